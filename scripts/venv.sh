# Sourced from the repository root by scripts/test, scripts/lint, scripts/serve and `make fmt`:
# makes .venv exist and hold this checkout installed with its dev extras. The install is redone
# only when pyproject.toml changed since the last one, so a warm run costs a hash, not a pip run.
# `return 1` rather than relying on `set -e`: `make fmt` sources this without it.

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv || return 1
fi
_stamp=.venv/.shm-webhook-installed
# Python, not sha256sum: macOS has no sha256sum.
_wanted=$(.venv/bin/python -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' pyproject.toml) || return 1
if [ "$(cat "$_stamp" 2>/dev/null)" != "$_wanted" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' || return 1
  printf '%s\n' "$_wanted" >"$_stamp"
fi
unset _stamp _wanted
