"""`shm-webhook check`: diagnose a live install through the Kubernetes API (docs/commands.md).

The pure modules (`selectors`, `report`, `certificates`, `scope`, `probe`) decide and word the
checks; `cluster` reads the objects; `install` checks one webhook configuration's Service,
pods, Secret and certificates; `command` runs everything and prints the report. Only
`webhook.subcommands` imports this package, and only for `check`: `serve` never loads it.
"""
