"""`python -m webhook` and the `shm-webhook` console script: hand over to `webhook.cli.main`.

Owns nothing else; must stay thin so every subcommand pays only for what it imports.
"""

from __future__ import annotations

import sys

from webhook.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
