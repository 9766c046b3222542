"""Baselines committed in the repository: ``<baseline dir>/<key>/<suite>.json``.

Files are diffable (sorted keys, one case per id, summary statistics and a 21-point latency sketch rather than every
sample) and written atomically. Updating writes the cases that ran and keeps the others already stored.

Schema 2 adds ``trials`` per case: metric -> one value per trial (median, mean and p90 latency in ms, throughput in
samples/s), which is what the gate's rank test compares with the current run's trials. Schema 1 files are still
read; without trials the gate cannot tell a change from noise, so a change beyond tolerance is ``ambiguous`` until
the baseline is recorded again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.fsio import write_json
from harness.results import CaseResult
from harness.stats import compact_quantiles

SCHEMA = "harness.baseline/2"
READABLE = frozenset({"harness.baseline/1", SCHEMA})


class BaselineStore:
    def __init__(self, root: Path, key: str) -> None:
        self.root = Path(root)
        self.key = key
        self._loaded: dict[str, dict[str, Any]] = {}

    def path(self, suite: str) -> Path:
        return self.root / self.key / f"{suite}.json"

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise HarnessError(
                f"{path}: not valid JSON (line {exc.lineno}: {exc.msg}); restore it with git "
                "or rerun with --update-baselines"
            ) from None
        if not isinstance(data, dict) or data.get("schema") not in READABLE or not isinstance(data.get("cases"), dict):
            raise HarnessError(
                f"{path}: not a baseline file of schema {SCHEMA}; restore it with git or delete it "
                "and rerun with --update-baselines"
            )
        return data

    def load(self, suite: str) -> dict[str, Any]:
        """The suite's baseline document under this key (empty when there is none)."""
        if suite not in self._loaded:
            path = self.path(suite)
            self._loaded[suite] = self._read(path) if path.is_file() else {"schema": SCHEMA, "cases": {}}
        return self._loaded[suite]

    def entry(self, suite: str, case_id: str) -> dict[str, Any] | None:
        entry: dict[str, Any] | None = self.load(suite)["cases"].get(case_id)
        return entry

    def other_keys(self, suite: str) -> list[str]:
        """Keys other than ours that hold a baseline for this suite, to tell the user where baselines exist."""
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob(f"*/{suite}.json") if p.parent.name != self.key)

    def update(self, suite: str, results: list[CaseResult], environment: dict[str, Any]) -> Path:
        """Record the measured cases of ``results``; keep the suite's other stored cases. Atomic."""
        path = self.path(suite)
        current: dict[str, Any] = self._read(path) if path.is_file() else {"schema": SCHEMA, "cases": {}}
        for result in results:
            if result.metrics:
                current["cases"][result.id] = baseline_entry(result, environment)
        current["schema"] = SCHEMA
        current["key"] = self.key
        current["suite"] = suite
        current["environment"] = {k: environment.get(k) for k in ("cpu", "gpus", "os", "backend", "python")}
        write_json(path, current)
        self._loaded[suite] = current
        return path


def baseline_entry(result: CaseResult, environment: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "params": result.params,
        "metrics": result.metrics,
        "stats": result.stats,
        "trials": {name: [round(v, 6) for v in values] for name, values in result.trials.items()},
        "recorded": {"date": environment.get("date"), "commit": (environment.get("commit") or {}).get("id")},
    }
    latency = result.samples.get("latency_ms")
    if latency:
        entry["latency_quantiles_ms"] = compact_quantiles(latency)
    accuracy = getattr(result, "accuracy", None)
    if accuracy and accuracy.get("outputs"):
        # What a later run's accuracy is checked against (harness.accuracy.check: cosine, top-1, mismatch).
        keep = ("cosine_similarity", "top1_agreement", "mismatch_fraction", "max_abs_error", "error_quantile")
        entry["accuracy"] = {
            "reference": accuracy.get("reference"),
            "outputs": {name: {k: out.get(k) for k in keep} for name, out in accuracy["outputs"].items()},
        }
    return entry
