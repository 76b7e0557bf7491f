"""Per-sample limits and the Prometheus naming rules every parser enforces."""

from __future__ import annotations

import re
from dataclasses import dataclass

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_INVALID_METRIC_CHARS = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(frozen=True, slots=True)
class Limits:
    """What one sample may carry; documented in docs/limits.md."""

    max_labels: int = 32
    max_name_length: int = 256
    max_label_value_length: int = 2048


def metric_name_problem(name: str, limits: Limits) -> str | None:
    """Why ``name`` is not a valid metric name, or None."""
    if not METRIC_NAME.match(name):
        return f"invalid metric name {name!r}: must match [a-zA-Z_:][a-zA-Z0-9_:]*"
    if len(name) > limits.max_name_length:
        return f"metric name longer than {limits.max_name_length} characters"
    return None


def labels_problem(labels: dict[str, str], limits: Limits) -> str | None:
    """Why ``labels`` are not acceptable, or None."""
    if len(labels) > limits.max_labels:
        return f"{len(labels)} labels, more than the limit of {limits.max_labels}"
    for k, v in labels.items():
        if not LABEL_NAME.match(k) or k.startswith("__"):
            return (
                f"invalid label name {k!r}: must match [a-zA-Z_][a-zA-Z0-9_]* "
                "and not start with __"
            )
        if len(k) > limits.max_name_length:
            return f"label name {k[:40]!r}... longer than {limits.max_name_length} characters"
        if len(v) > limits.max_label_value_length:
            return (
                f"value of label {k!r} is {len(v)} characters, "
                f"more than the limit of {limits.max_label_value_length}"
            )
    return None


def sanitize_metric_name(name: str) -> str:
    """Map a foreign name (e.g. InfluxDB ``disk.used-pct``) onto the Prometheus alphabet."""
    out = _INVALID_METRIC_CHARS.sub("_", name)
    return "_" + out if not out or out[:1].isdigit() else out


def sanitize_label_name(name: str) -> str:
    out = _INVALID_LABEL_CHARS.sub("_", name)
    if out.startswith("__"):  # reserved for Vigil's own labels
        out = "_" + out.lstrip("_")
    return "_" + out if not out or out[:1].isdigit() else out
