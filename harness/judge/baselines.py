"""Baselines committed in the repository: ``<baseline dir>/<key>/<suite>.json``.

Files are diffable (sorted keys, one case per id, summary statistics and a 21-point latency sketch rather than every
sample) and written atomically. Updating writes the cases that ran and keeps the others already stored.

Schema 2 adds ``trials`` per case: metric -> one value per trial (median, mean and p90 latency in ms, throughput in
samples/s), which is what the gate's rank test compares with the current run's trials. Schema 1 files are still
read; without trials the gate cannot tell a change from noise, so a change beyond tolerance is ``ambiguous`` until
the baseline is recorded again.

A case may also keep ``profile``: its per-layer profile (harness.attribution.record.LayerProfile, compact: one short
object per layer), which a later run diffs its own profile against to say where a change went. It is an optional key
of schema 2, not a schema 3: nothing schema 2 already means changes, a file without it (recorded before profiles,
with ``--no-profile``, or on a backend without a profiler) is as usable as ever and only explains nothing, and
harness versions that know nothing of profiles read the files that hold them, since they ignore keys they do not
use; a new schema would make every one of them refuse the files for no gain.

A file is used only when it is what it claims to be: a baseline document of a readable schema, recorded for the
suite it is named after, whose case records hold finite numbers. Anything else is refused with one line naming the
file, what is wrong and how to record it again, never half-used. Updates hold a lock on the file (``filelock``)
around their read-modify-write, so two runs updating one folder at once (two shards on one runner, two jobs on a
shared checkout) end with the cases of both.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from harness.attribution.record import LayerProfile
from harness.core.errors import HarnessError, output_error
from harness.core.fsio import loads_json, locked, write_json
from harness.core.results import CaseResult
from harness.core.stats import compact_quantiles

SCHEMA = "harness.baseline/2"
READABLE = frozenset({"harness.baseline/1", SCHEMA})


class BaselineStore:
    def __init__(self, root: Path, key: str, replace_unusable: bool = False) -> None:
        self.root = Path(root)
        self.key = key
        # --update-baselines: a stored file that cannot be used reads as empty and is replaced by the update (the
        # fix its refusal names); otherwise it is refused.
        self.replace_unusable = replace_unusable
        self._loaded: dict[str, dict[str, Any]] = {}

    def path(self, suite: str) -> Path:
        return self.root / self.key / f"{suite}.json"

    def _read(self, path: Path, suite: str) -> dict[str, Any]:
        """The baseline document at ``path``; raises :class:`HarnessError` (one line) when it cannot be used."""
        redo = "delete it (or restore it with git) and rerun with --update-baselines"
        try:
            data = loads_json(path.read_bytes().decode("utf-8"))
        except json.JSONDecodeError as exc:
            raise HarnessError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg}); {redo}") from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise HarnessError(f"{path}: not a baseline file ({exc}); {redo}") from None
        except OSError as exc:
            raise HarnessError(f"{path}: cannot be read ({exc.strerror or exc}); check its permissions") from None
        problem = baseline_problem(data, suite)
        if problem:
            raise HarnessError(f"{path}: {problem}; {redo}")
        return data

    def load(self, suite: str) -> dict[str, Any]:
        """The suite's baseline document under this key (empty when there is none)."""
        if suite not in self._loaded:
            path = self.path(suite)
            self._loaded[suite] = self._current(path, suite) if self.replace_unusable else self._stored(path, suite)
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
        """Record the measured cases of ``results``; keep the suite's other stored cases. Atomic, and locked
        against other processes updating the same file. A stored file that cannot be used is replaced."""
        path = self.path(suite)
        try:
            with locked(path):
                current = self._current(path, suite)
                for result in results:
                    if result.metrics:
                        current["cases"][result.id] = baseline_entry(result, environment)
                current["schema"] = SCHEMA
                current["key"] = self.key
                current["suite"] = suite
                current["environment"] = {k: environment.get(k) for k in ("cpu", "gpus", "os", "backend", "python")}
                write_json(path, current)
        except OSError as exc:
            raise output_error(exc, path, "--baseline-dir") from None
        self._loaded[suite] = current
        return path

    def _current(self, path: Path, suite: str) -> dict[str, Any]:
        """What an update starts from: the stored document, or a new one when there is none or it is unusable
        (the user asked to record the suite again, which is the fix the refusal names)."""
        try:
            return self._stored(path, suite)
        except HarnessError:
            return {"schema": SCHEMA, "cases": {}}

    def _stored(self, path: Path, suite: str) -> dict[str, Any]:
        return self._read(path, suite) if path.is_file() else {"schema": SCHEMA, "cases": {}}


def baseline_problem(data: Any, suite: str) -> str | None:
    """What makes ``data`` unusable as the baseline of ``suite`` (None when nothing does)."""
    if not isinstance(data, dict) or data.get("schema") not in READABLE or not isinstance(data.get("cases"), dict):
        return f"not a baseline file of schema {SCHEMA}"
    recorded = data.get("suite")
    if recorded is not None and recorded != suite:
        return f"holds the baselines of suite '{recorded}', not of '{suite}' (copied from another suite?)"
    for case_id, entry in data["cases"].items():
        problem = _entry_problem(entry, suite)
        if problem:
            return f"case '{case_id}': {problem}"
    return None


def _entry_problem(entry: Any, suite: str) -> str | None:
    if not isinstance(entry, dict):
        return "expected a mapping of params, metrics and trials"
    params = entry.get("params", {})
    if not isinstance(params, dict):
        return "params: expected a mapping"
    if params.get("suite") not in (None, suite):
        return f"params.suite is '{params.get('suite')}', not '{suite}'"
    metrics = entry.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        return "metrics: expected a mapping of metric name -> number"
    for name, value in metrics.items():
        if not _finite(value):
            return f"metrics.{name}: expected a finite number, got {value!r}"
    trials = entry.get("trials", {})
    if not isinstance(trials, dict):
        return "trials: expected a mapping of metric name -> list of numbers"
    for name, values in trials.items():
        if not isinstance(values, list) or not all(_finite(v) for v in values):
            return f"trials.{name}: expected a list of finite numbers"
    if entry.get("profile") is not None:
        try:
            LayerProfile.from_dict(entry["profile"])
        except HarnessError as exc:
            return str(exc)
    return None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
    if result.profile:
        entry["profile"] = result.profile  # already compact: what a later run's attribution diffs against
    accuracy = getattr(result, "accuracy", None)
    if accuracy and accuracy.get("outputs"):
        # What a later run's accuracy is checked against (harness.judge.accuracy.check: cosine, top-1, mismatch).
        keep = ("cosine_similarity", "top1_agreement", "mismatch_fraction", "max_abs_error", "error_quantile")
        entry["accuracy"] = {
            "reference": accuracy.get("reference"),
            "outputs": {name: {k: out.get(k) for k in keep} for name, out in accuracy["outputs"].items()},
        }
    return entry
