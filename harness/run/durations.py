"""The ``harness.durations/1`` file: seconds per case, written by ``harness merge --durations-out`` and read by
``--shard-durations`` to balance the shards of the next run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.core.results import RunResults

DURATIONS_SCHEMA = "harness.durations/1"


def durations_of(results: RunResults) -> dict[str, float]:
    """Seconds each case took, for ``--shard-durations`` (cases that never ran are left out)."""
    return {c.id: float(c.duration_s) for c in results.cases if c.duration_s and c.duration_s > 0}


def durations_document(durations: Mapping[str, float]) -> dict[str, Any]:
    """The ``harness.durations/1`` form: small, sorted, diffable; safe to commit beside the workflows."""
    return {"schema": DURATIONS_SCHEMA, "durations_s": {k: round(v, 3) for k, v in sorted(durations.items())}}
