"""``harness report --baseline``: show a run against another baseline than the one it was gated with.

The baseline may be another run's results.json, a baseline file (``baselines/<key>/<suite>.json``) or a baseline
directory (``baselines/``, the key taken from the results' environment). Each measured case gets that baseline's
entry and a fresh verdict from :func:`harness.judge.gate.judge` (per-trial values on both sides where recorded) with the
tolerances the case was gated with (10% when none were recorded). Nothing is measured again.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.fsio import read_user_json
from harness.core.results import SCHEMA as RESULTS_SCHEMA
from harness.core.results import CaseResult, RunResults
from harness.core.stats import compact_quantiles
from harness.judge.gate import judge

BASELINE_SCHEMA = "harness.baseline/"  # any version: /1 has metrics only, /2 adds per-trial values


def _read(path: Path) -> Any:
    return read_user_json(path, f"--baseline {path}", "a JSON file", "no such file or directory")


def load_entries(path: Path, results: RunResults) -> tuple[dict[tuple[str, str], dict[str, Any]], str]:
    """Baseline entries by (suite, case id), and a one-line description of where they came from."""
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    if path.is_dir():
        key = str(results.environment.get("key") or "")
        folder = path / key if key and (path / key).is_dir() else path
        files = sorted(folder.glob("*.json"))
        if not files:
            keys = sorted(p.name for p in path.iterdir() if p.is_dir())
            raise HarnessError(
                f"--baseline {path}: no baseline files for key '{key}'"
                + (f"; keys present: {', '.join(keys)}" if keys else "")
                + "; pass the folder or file to compare with"
            )
        for file in files:
            entries.update(_entries_of(file, _read(file)))
        return entries, f"{folder} ({len(files)} file{'s' if len(files) != 1 else ''})"
    data = _read(path)
    entries.update(_entries_of(path, data))
    return entries, str(path)


def _entries_of(path: Path, data: Any) -> dict[tuple[str, str], dict[str, Any]]:
    schema = data.get("schema") if isinstance(data, dict) else None
    if isinstance(schema, str) and schema.startswith(BASELINE_SCHEMA):
        suite = str(data.get("suite") or path.stem)
        cases = data.get("cases") or {}
        if not isinstance(cases, dict):
            raise HarnessError(f"--baseline {path}: 'cases' should be an object of case id -> entry")
        for case_id, stored in cases.items():
            if not isinstance(stored, dict) or not isinstance(stored.get("metrics", {}), dict):
                raise HarnessError(
                    f"--baseline {path}: case '{case_id}' is not an entry with 'metrics'; "
                    "pass a baseline file written by this harness"
                )
        return {(suite, case_id): stored for case_id, stored in cases.items()}
    if schema == RESULTS_SCHEMA:
        out = {}
        for case in RunResults.from_dict(data, str(path)).cases:
            if not case.metrics:
                continue
            entry: dict[str, Any] = {"params": case.params, "metrics": case.metrics, "stats": case.stats}
            if case.trials:
                entry["trials"] = case.trials
            if case.profile:  # so a report judged against another run shows where the time went against it too
                entry["profile"] = case.profile
            if case.samples.get("latency_ms"):
                entry["latency_quantiles_ms"] = compact_quantiles(case.samples["latency_ms"])
            out[(str(case.params.get("suite", "")), case.id)] = entry
        return out
    raise HarnessError(
        f"--baseline {path}: neither a results file ({RESULTS_SCHEMA}) nor a baseline file ({BASELINE_SCHEMA}N) "
        f"(found schema {schema!r})"
    )


def _trials(entry: dict[str, Any] | None) -> dict[str, list[float]] | None:
    trials = (entry or {}).get("trials")
    return trials if isinstance(trials, dict) else None


def apply_baseline(results: RunResults, path: Path) -> tuple[RunResults, str]:
    """A copy of ``results`` judged against the baseline at ``path``; the input is left unchanged."""
    entries, description = load_entries(path, results)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for (_suite, case_id), stored in entries.items():
        by_id.setdefault(case_id, []).append(stored)
    out = copy.deepcopy(results)
    for case in out.cases:
        if not case.metrics or case.status in ("skipped", "error"):
            continue
        suite = str(case.params.get("suite", ""))
        entry: dict[str, Any] | None = entries.get((suite, case.id))
        if entry is None and len(by_id.get(case.id, [])) == 1:  # e.g. a results file from a renamed suite
            entry = by_id[case.id][0]
        tolerance = {
            c["metric"]: c["tolerance"]
            for c in case.comparisons
            if isinstance(c, dict) and isinstance(c.get("tolerance"), (int, float)) and "metric" in c
        }
        recorded = case.params.get("tolerance")
        if isinstance(recorded, dict):
            tolerance = {**recorded, **tolerance}
        tolerance.setdefault("default", 0.10)
        verdict = judge(
            case.id,
            case.metrics,
            (entry or {}).get("metrics"),
            tolerance,
            trials=getattr(case, "trials", None) or None,
            baseline_trials=_trials(entry),
        )
        was_regression = case.verdict == "regressed"
        case.baseline = entry
        case.verdict = verdict.verdict
        case.comparisons = [c.to_dict() for c in verdict.comparisons]
        case.message = verdict.message
        if verdict.failed:
            case.status = "failed"
        elif case.status == "failed" and was_regression:
            case.status = "passed"
    # Baseline cases of the suites in this run that did not run at all: shown as "missing" (they neither pass nor
    # fail; a renamed or deleted case, a -k selection or a shard shows up here).
    suites = set(out.suites) | {str(c.params.get("suite", "")) for c in out.cases}
    ran = {c.id for c in out.cases}
    for (suite, case_id), stored in sorted(entries.items(), key=lambda item: item[0]):
        if suite in suites and case_id not in ran:
            params = dict(stored.get("params") or {})
            params.setdefault("suite", suite)
            out.add(
                CaseResult(
                    id=case_id,
                    params=params,
                    status="skipped",
                    verdict="missing",
                    message=f"{case_id}: in the baseline but not in this run",
                    baseline=stored,
                )
            )
    return out, description
