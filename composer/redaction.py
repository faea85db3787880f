"""Hiding AWS secrets from everything sm-compose prints: the one place redaction happens.

Printed output (dry runs, error messages, the CLI's last-resort errors) goes through here. Two
kinds of secret are hidden: values under secret-looking keys (AWS_SECRET_ACCESS_KEY, API_TOKEN,
DB_PASSWORD, ...) in documents, and, in any text, access key ids (AKIA.../ASIA...) and the values
of this process's own secret environment variables (its AWS credentials above all).
"""

from __future__ import annotations

import os
import re
from typing import Any

REDACTED = "***redacted***"
SECRET_KEY = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_KEY")
ACCESS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")
#: Shorter values are not hidden in free text: they would blank out ordinary words.
_MIN_SECRET = 8


#: Environment variables whose values are secrets in any text (a name ending in _FILE, _PATH or
#: _DIR, such as AWS_WEB_IDENTITY_TOKEN_FILE, holds a path, not a secret).
_SECRET_ENV = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|ACCESS_KEY")
_NOT_SECRET_ENV = re.compile(r"_(FILE|PATH|DIR)$")


def _secret_values() -> list[str]:
    """This process's secret environment values (AWS credentials above all), longest first."""
    found = {
        value
        for name, value in os.environ.items()
        if _SECRET_ENV.search(name.upper())
        and not _NOT_SECRET_ENV.search(name.upper())
        and len(value) >= _MIN_SECRET
    }
    return sorted(found, key=len, reverse=True)


def redact_text(text: str) -> str:
    """`text` with access key ids and this process's secret environment values hidden."""
    for value in _secret_values():
        text = text.replace(value, REDACTED)
    return ACCESS_KEY_ID.sub(REDACTED, text)


def redact(value: Any, key: str = "") -> Any:
    """A copy safe to print: secret-looking keys' values hidden, and every string as in
    redact_text."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        if key and SECRET_KEY.search(key.upper()):
            return REDACTED
        return redact_text(value)
    return value
