# Every target runs from a fresh clone: the scripts create .venv and fetch helm/kubectl as needed.
.DEFAULT_GOAL := help
SHELL := bash
ARGS ?=

.PHONY: help test serve lint fmt bench

help: ## list the targets
	@awk -F ':.*## ' '/^[a-z][a-z-]*:.*## / {printf "  %-6s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

test: ## lint, type-check and run every test (pytest arguments: ARGS="-k quantity")
	scripts/test $(ARGS)

serve: ## run the webhook on https://localhost:8443 with a dev certificate (flags: ARGS="...")
	scripts/serve $(ARGS)

lint: ## ruff, mypy, import-linter and hadolint, without the tests
	scripts/lint

bench: ## webhook vs the Go reference and the Python floor on one CPU, ~13 min; needs wrk and Go (ARGS="--quick")
	source scripts/venv.sh && .venv/bin/python -m bench $(ARGS)

fmt: ## format the code and apply ruff's safe fixes
	source scripts/venv.sh && .venv/bin/ruff format && .venv/bin/ruff check --fix
