"""Result records and their versioned JSON form (``reports/results.json``).

One :class:`CaseResult` per case, whatever happened to it (passed, failed, skipped, error), so a report can always
say what ran. The file is rewritten atomically after every case, so a crash or Ctrl-C keeps the finished ones.
It is strict JSON: a NaN or infinite number is written as ``null`` and listed in the top-level ``nonfinite`` object
(JSON Pointer -> "NaN" / "Infinity" / "-Infinity"), and read back as the same float (harness.core.fsio).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeGuard

from harness.core.errors import HarnessError
from harness.core.fsio import read_user_json, write_json

SCHEMA = "harness.results/1"
RESULTS_NAME = "results.json"  # the file a run writes into its report folder

STATUSES = ("passed", "failed", "skipped", "error")


@dataclass
class CaseResult:
    id: str
    params: dict[str, Any]  # suite, model, precision, batch_size, shape, dims, backend settings
    status: str = "passed"  # one of STATUSES: the pytest outcome
    verdict: str | None = None  # the gate's verdict (see harness.judge.gate.VERDICTS); None when nothing was measured
    message: str = ""  # failure / skip reason, one line per problem
    metrics: dict[str, float] = field(default_factory=dict)  # canonical metric name -> value (harness.core.metrics)
    stats: dict[str, dict[str, float]] = field(default_factory=dict)  # series name -> harness.core.stats.summarize()
    samples: dict[str, list[float]] = field(default_factory=dict)  # series name -> per-iteration values
    trials: dict[str, list[float]] = field(default_factory=dict)  # metric -> one value per trial
    build: dict[str, Any] = field(default_factory=dict)  # build_time_ms, engine_bytes, cache_hit, details
    measure: dict[str, Any] = field(default_factory=dict)  # iterations, wall_ms, warm-up facts
    baseline: dict[str, Any] | None = None  # the baseline entry compared against
    comparisons: list[dict[str, Any]] = field(default_factory=list)  # per metric (harness.judge.gate.Comparison)
    warnings: list[str] = field(default_factory=list)
    telemetry: dict[str, Any] = field(default_factory=dict)  # machine.telemetry record; 'unavailable' without NVML
    duration_s: float = 0.0  # wall time the whole case took, build included
    # The precision recipe's typed model (harness.recipes.TypedModel.record: size_bytes, conversion_time_ms, ...)
    recipe: dict[str, Any] = field(default_factory=dict)
    # Outputs vs the fp32 reference (harness.judge.accuracy.summary, plus "failures"); None for fp32 or unmeasured cases
    accuracy: dict[str, Any] | None = None
    # What was fed, per input name: {"shape": [...], "dtype": "int64", "range": [low, high] (inclusive),
    # "rule": why these values (e.g. "indexes Gather 'embeddings' of 1000 rows", "mask: 0/1, mostly 1")}
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Outputs of the fp32 reference that hold NaN or infinities on these inputs, per output name:
    # {"elements": n, "nan": n, "posinf": n, "neginf": n} (harness.judge.accuracy.nonfinite_counts). Empty when every
    # value
    # was finite or no output was checked. A finding: flagged in the terminal and the reports; an output with no
    # finite value at all fails the case (nothing it computes can be checked).
    reference_nonfinite: dict[str, dict[str, int]] = field(default_factory=dict)
    # The case's per-layer profile, taken in a pass of its own after the gated trials
    # (harness.attribution.record.LayerProfile.to_dict); None where the backend has no profiler or profiling was off.
    profile: dict[str, Any] | None = None
    # Where the time went: the baseline's (or A/B reference's) profile against this one
    # (harness.attribution.diff.ProfileDiff.to_dict); None when there was no profile on either side.
    attribution: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "case") -> CaseResult:
        """A record read back from JSON; raises :class:`HarnessError` naming the field when one has the wrong type
        (unknown keys are ignored, missing ones take their defaults)."""
        if not isinstance(data, dict):
            raise HarnessError(f"{where}: expected an object with 'id' and 'params', got {type(data).__name__}")
        if not isinstance(data.get("id"), str) or not data["id"]:
            raise HarnessError(f"{where}: no case 'id' (a non-empty string)")
        values = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            expected = _FIELD_TYPES.get(f.name)
            if expected is not None and not (value is None and f.name in _NULLABLE) and not _is(value, expected):
                raise HarnessError(
                    f"{where} '{data['id']}': field '{f.name}' should be {_TYPE_NAMES[expected]}, "
                    f"got {type(value).__name__}"
                )
            values[f.name] = value
        bad = [k for k, v in (values.get("metrics") or {}).items() if v is not None and not _is(v, _NUMBER)]
        if bad:
            raise HarnessError(f"{where} '{data['id']}': metric '{bad[0]}' should be a number")
        values.setdefault("params", {})
        return cls(**values)


# What each field of a CaseResult must be in JSON, so a malformed record is refused by name instead of breaking a
# report halfway; numbers may be null (a non-finite value read by another tool).
_NUMBER = (int, float)
_FIELD_TYPES: dict[str, Any] = {
    "params": dict,
    "status": str,
    "verdict": str,
    "message": str,
    "metrics": dict,
    "stats": dict,
    "samples": dict,
    "trials": dict,
    "build": dict,
    "measure": dict,
    "baseline": dict,
    "comparisons": list,
    "warnings": list,
    "telemetry": dict,
    "duration_s": _NUMBER,
    "recipe": dict,
    "accuracy": dict,
    "inputs": dict,
    "reference_nonfinite": dict,
    "profile": dict,
    "attribution": dict,
}
_NULLABLE = frozenset({"verdict", "baseline", "accuracy", "duration_s", "profile", "attribution"})
_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", _NUMBER: "a number"}


def _is(value: Any, expected: Any) -> bool:
    return isinstance(value, expected) and not (expected is _NUMBER and isinstance(value, bool))


@dataclass
class RunResults:
    environment: dict[str, Any]
    cases: list[CaseResult] = field(default_factory=list)
    suites: dict[str, str] = field(default_factory=dict)  # suite name -> suite file path
    # One record per pytest session that wrote into this file (its shard, exit status and gate outcome);
    # ``harness merge`` concatenates them and fails the merged run when any of them failed.
    runs: list[dict[str, Any]] = field(default_factory=list)

    def add(self, result: CaseResult) -> None:
        """Add or replace (by id) a case's result."""
        self.cases = [c for c in self.cases if c.id != result.id] + [result]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "environment": self.environment,
            "suites": self.suites,
            "runs": self.runs,
            "cases": [c.to_dict() for c in self.cases],
            "speedups": speedups(self.cases),
        }

    def write(self, path: Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "results") -> RunResults:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else None
            raise HarnessError(
                f"{source}: not a results file of schema {SCHEMA} (found {found!r}); "
                "pass a results.json written by this harness"
            )
        parts = {"environment": dict, "suites": dict, "runs": list, "cases": list}
        for name, expected in parts.items():
            if not isinstance(data.get(name, expected()), expected):
                raise HarnessError(
                    f"{source}: '{name}' should be {_TYPE_NAMES[expected]}; pass a results.json written by this harness"
                )
        return cls(
            environment=data.get("environment", {}),
            suites=data.get("suites", {}),
            runs=data.get("runs", []),
            cases=[CaseResult.from_dict(c, f"{source}: case #{i + 1}") for i, c in enumerate(data.get("cases", []))],
        )

    @classmethod
    def read(cls, path: Path) -> RunResults:
        """A results file written by :meth:`write` (or by hand: NaN / Infinity tokens are accepted too)."""
        data = read_user_json(path, str(path), "a results.json", "no such results file; run the benchmarks first")
        return cls.from_dict(data, str(path))

    def to_dataframe(self) -> Any:
        """One row per case: params, status, verdict and every metric as columns (pandas)."""
        import pandas as pd

        rows = []
        for case in self.cases:
            row: dict[str, Any] = {"id": case.id, "status": case.status, "verdict": case.verdict}
            row.update({k: v for k, v in case.params.items() if not isinstance(v, (dict, list))})
            row.update(case.metrics)
            rows.append(row)
        frame = pd.DataFrame(rows)
        by_id = {s["id"]: s["speedup_vs_fp32"] for s in speedups(self.cases)}
        if by_id and not frame.empty:
            frame["speedup_vs_fp32"] = frame["id"].map(by_id)
        return frame


def speedups(cases: list[CaseResult]) -> list[dict[str, Any]]:
    """Speed-up of every measured non-fp32 case over the fp32 case of the same model, batch size and shape set.

    ``speedup_vs_fp32`` = this case's throughput / the fp32 case's throughput (samples/s; 2.0: twice as fast), both
    from the same run; the report's "vs fp32" column is the same ratio.
    """

    def group(case: CaseResult) -> tuple[Any, ...]:
        p = case.params
        return (p.get("suite"), p.get("model"), p.get("batch_size"), p.get("shape"), p.get("workspace_bytes"))

    fp32 = {
        group(c): c
        for c in cases
        if c.params.get("precision") == "fp32" and _positive(c.metrics.get("throughput_sps")) and c.status != "error"
    }
    out = []
    for case in cases:
        ref = fp32.get(group(case))
        throughput = case.metrics.get("throughput_sps")
        if case.params.get("precision") == "fp32" or ref is None or not _positive(throughput):
            continue
        out.append(
            {
                "id": case.id,
                "model": case.params.get("model"),
                "batch_size": case.params.get("batch_size"),
                "shape": case.params.get("shape"),
                "precision": case.params.get("precision"),
                "fp32_id": ref.id,
                "throughput_sps": throughput,
                "fp32_throughput_sps": ref.metrics["throughput_sps"],
                "latency_median_ms": case.metrics.get("latency_median_ms"),
                "fp32_latency_median_ms": ref.metrics.get("latency_median_ms"),
                "speedup_vs_fp32": throughput / ref.metrics["throughput_sps"],
            }
        )
    return out


def _positive(value: Any) -> TypeGuard[float]:
    """A usable rate: a finite number above zero (a NaN throughput has no speed-up)."""
    return _is(value, _NUMBER) and math.isfinite(value) and value > 0


def all_nonfinite(counts: dict[str, dict[str, int]]) -> list[str]:
    """The outputs of a ``reference_nonfinite`` record (:attr:`CaseResult.reference_nonfinite`) that hold no finite
    value at all."""
    return [
        name
        for name, c in counts.items()
        if isinstance(c, dict) and c.get("nan", 0) + c.get("posinf", 0) + c.get("neginf", 0) >= c.get("elements", 0) > 0
    ]


def results_files(inputs: Iterable[str | Path], hint: str = "pass results files or their folders") -> list[Path]:
    """The results files named on a command line, each once, in order; a folder stands for every ``results.json``
    below it (sorted). A folder holding none, or a path that does not exist, is a :class:`HarnessError` (``hint``
    says what to pass instead)."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            matches = sorted(p for p in path.rglob(RESULTS_NAME) if p.is_file())
            if not matches:
                raise HarnessError(f"{path}: no {RESULTS_NAME} below this folder; {hint}")
            found.extend(matches)
        elif path.is_file():
            found.append(path)
        else:
            raise HarnessError(f"{path}: no such results file or folder")
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())
