"""Where sm-compose keeps what it can always make again: container environments, rendered files.

Everything in it is keyed by what made it, so deleting the folder only costs time.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR_CACHE = "COMPOSER_CACHE_DIR"


def cache_dir() -> Path:
    """$COMPOSER_CACHE_DIR, else $XDG_CACHE_HOME/sagemaker-composer, else ~/.cache/..."""
    explicit = os.environ.get(ENV_VAR_CACHE)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sagemaker-composer"
