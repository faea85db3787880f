#!/usr/bin/env bash
# Set up a fresh machine and run every check CI runs: lint, types, and all tests (unit,
# integration, end to end, engine). Engine tests set up Podman themselves through
# scripts/setup-podman.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ -x scripts/setup-podman.sh ]; then
  scripts/setup-podman.sh
fi
echo "test: ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "test: mypy" >&2
.venv/bin/mypy
echo "test: pytest" >&2
exec .venv/bin/pytest -m "" "$@"  # -m "": every tier (plain pytest runs the fast ones only)
