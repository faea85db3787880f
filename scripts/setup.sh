#!/usr/bin/env bash
# Set up this checkout on a fresh Debian machine: nginx, the virtualenv, the project, the model
# archive the examples use. Idempotent and quiet when everything is already there.
#
# The virtualenv is made and filled by uv (uv venv --seed, uv pip install -e '.[dev]'), with the
# index set-up of pip's configuration (scripts/config). uv is taken from .venv or PATH, or on a
# fresh machine bootstrapped with pip into .venv. Where uv cannot be had or fails, or with
# COMPOSER_ENV_BUILDER=pip (which container environments follow too), pip does it, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/config
. scripts/config
# Playwright (dev extra) must never fetch a browser: the tests drive Debian's (setup-browser.sh).
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "setup: installing nginx-light" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx-light >/dev/null
fi

use_uv=1
if [ "${COMPOSER_ENV_BUILDER:-uv}" = pip ]; then
  use_uv=0
elif [ -n "$UV_UNSUPPORTED" ]; then
  echo "setup: pip's configuration sets $UV_UNSUPPORTED, which uv cannot take; using pip" >&2
  use_uv=0
fi

# find_uv: the uv in .venv, else on PATH; sets UV (empty when there is none).
find_uv() {
  UV=""
  if [ -x .venv/bin/uv ]; then UV=.venv/bin/uv; elif command -v uv >/dev/null 2>&1; then UV=$(command -v uv); fi
}

pip_install() {
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
}

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  find_uv
  if [ "$use_uv" -eq 1 ] && [ -n "$UV" ] &&
    "$UV" venv --quiet --seed --python "$composer_python" "${UV_INDEX_ARGS[@]}" .venv; then
    :
  else
    [ "$use_uv" -eq 0 ] || [ -z "$UV" ] || echo "setup: uv venv failed; using python -m venv" >&2
    rm -rf .venv
    python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
  fi
fi
stamp=.venv/.composer-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  find_uv
  if [ "$use_uv" -eq 1 ] && [ -z "$UV" ]; then
    echo "setup: bootstrapping uv into .venv with pip" >&2
    if .venv/bin/python -m pip install -q --disable-pip-version-check uv; then
      find_uv
    else
      echo "setup: pip could not install uv; installing with pip instead" >&2
    fi
  fi
  if [ "$use_uv" -eq 1 ] && [ -n "$UV" ]; then
    echo "setup: installing sagemaker-composer into .venv (uv)" >&2
    if ! "$UV" pip install --quiet --python .venv/bin/python "${UV_ARGS[@]}" -e '.[dev]'; then
      echo "setup: uv could not install it; trying pip" >&2
      pip_install
    fi
  else
    echo "setup: installing sagemaker-composer into .venv (pip)" >&2
    pip_install
  fi
  touch "$stamp"
fi

.venv/bin/python scripts/make-spacy-model.py artifacts/spacy-model.tar.gz
.venv/bin/python scripts/make-spacy-models.py artifacts/spacy-models
