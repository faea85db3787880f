#!/usr/bin/env bash
# Set up a fresh machine and run every check CI runs: lint, types, and all tests (unit,
# integration, end to end, engine). The engine tests run once per engine, Podman and Docker;
# their session fixture runs scripts/setup-podman.sh and scripts/setup-docker.sh too, starts the
# tests' own Docker daemon and stops it at the end. The set-up here does the slow part first
# (packages, base images, Debian's Chromium for the inspector's browser test:
# scripts/setup-browser.sh) and leaves that daemon as it found it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The SageMaker SDK's resource layer (sagemaker-core) is a client the tests run against `local`;
# it brings pandas and numpy, so only the tests install it, not the main job's set-up.
if ! .venv/bin/python -c "import sagemaker.core.resources" 2>/dev/null; then
  echo "test: installing the sdk extra (sagemaker-core)" >&2
  .venv/bin/pip install -q --disable-pip-version-check -e '.[dev,sdk]'
fi
# Debian's Chromium for the inspector's browser test (Playwright drives it; it downloads none).
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
scripts/setup-browser.sh
if [ -x scripts/setup-podman.sh ]; then
  scripts/setup-podman.sh
fi
if [ -x scripts/setup-docker.sh ]; then
  docker_was_running=0
  scripts/setup-docker.sh --status >/dev/null && docker_was_running=1
  scripts/setup-docker.sh >/dev/null
  [ "$docker_was_running" -eq 1 ] || scripts/setup-docker.sh --stop
fi
echo "test: ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "test: mypy" >&2
.venv/bin/mypy
echo "test: pytest" >&2
exec .venv/bin/pytest -m "" "$@"  # -m "": every tier (plain pytest runs the fast ones only)
