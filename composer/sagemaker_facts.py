"""Facts about SageMaker and AWS that several layers need, each defined once.

A leaf module: it imports nothing from the package, so the spec, render, aws, the client and the
gateway (which imports no spec) all take these from here. A rule that only the spec applies
lives on the spec's models (composer/spec/rules.py), not here.
"""

from __future__ import annotations

import re

#: The region used when nothing names one: where boto3 clients of the local gateway point, the
#: region of rendered placeholder URIs, and the one S3 region whose CreateBucket takes no
#: LocationConstraint.
DEFAULT_REGION = "us-east-1"

#: SageMaker's names (endpoint, endpoint config, model, variant, container hostname, transform
#: job): letters, digits and inner hyphens, at most 63.
NAME_RULE = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
NAME_HELP = "letters, digits and inner hyphens, at most 63"

#: InvokeEndpoint's TargetModel (the X-Amzn-SageMaker-Target-Model header): 1 to 1024 printable
#: ASCII characters, not starting with a space. A multi-model archive's path under its prefix is
#: its TargetModel, so deploy applies the same rule to local archive names.
MAX_TARGET_MODEL = 1024
TARGET_MODEL_RULE = re.compile(r"[\x21-\x7e][\x20-\x7e]*")


def check_target_model(value: str) -> str | None:
    """Why SageMaker refuses `value` as a TargetModel, or None."""
    if not 1 <= len(value) <= MAX_TARGET_MODEL:
        return f"TargetModel must be 1 to {MAX_TARGET_MODEL} characters long; got {len(value)}"
    if not TARGET_MODEL_RULE.fullmatch(value):
        return "TargetModel must start with a non-blank character and hold printable ASCII only"
    return None
