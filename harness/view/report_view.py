"""The whole run as the reports show it: :func:`build_view` turns result records into a :class:`ReportView` (one
:class:`~harness.view.cases.CaseView` per case, the counts per label, the headline) once, for every renderer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from harness.core.metrics import METRICS, format_value
from harness.core.results import CaseResult, RunResults, speedups
from harness.view.cases import CaseView, Delta
from harness.view.cells import accuracy_cell
from harness.view.environment import environment_line, environment_rows
from harness.view.verdicts import ALWAYS_COUNTED, BAD_LABELS, LABELS, is_comparison, label_of


@dataclass
class ReportView:
    results: RunResults
    cases: list[CaseView]
    counts: dict[str, int]
    baseline_source: str | None = None  # where the baseline came from, when not the recorded one

    @property
    def environment(self) -> dict[str, Any]:
        return self.results.environment

    @property
    def total(self) -> int:
        return len(self.cases)

    @property
    def failing(self) -> bool:
        """The run failed: a regression, an error, or a case pytest failed (e.g. ambiguous with
        --fail-on-ambiguous, accuracy past its tolerance)."""
        return any(self.counts.get(label, 0) for label in BAD_LABELS) or any(
            c.case.status in ("failed", "error") for c in self.cases
        )

    def with_label(self, *labels: str) -> list[CaseView]:
        """Cases with any of these labels, in the order of ``labels`` (so regressed come before ambiguous)."""
        return [c for label in labels for c in self.cases if c.label == label]

    @property
    def headline(self) -> str:
        """One line: the verdict first, then the counts that matter."""
        n = self.total
        bad = [f"{self.counts[k]} {k}" for k in ("regressed", "failed") if self.counts.get(k)]
        warn = [f"{self.counts[k]} {k}" for k in ("ambiguous", "missing") if self.counts.get(k)]
        good = [f"{self.counts[k]} {k}" for k in ("improved", "new") if self.counts.get(k)]
        if self.failing:
            return f"FAIL: {', '.join(bad + warn) or 'failed'} of {n} case{'s' if n != 1 else ''}"
        if not n:
            return "NO CASES: the results file holds no case"
        tail = f" ({', '.join(warn + good)})" if warn or good else ""
        return f"PASS: no regression in {n} case{'s' if n != 1 else ''}{tail}"

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(c.model for c in self.cases))

    def model_cases(self, model: str) -> list[CaseView]:
        return [c for c in self.cases if c.model == model]

    def environment_line(self) -> str:
        return environment_line(self.environment)

    def environment_rows(self) -> list[tuple[str, str]]:
        rows = environment_rows(self.environment, self.cases)
        runs = [r for r in getattr(self.results, "runs", None) or [] if isinstance(r, dict)]
        if runs:  # the pytest sessions (shards, xdist workers) that wrote these results
            texts = []
            for run in runs:
                shard = run.get("shard")
                where = f"shard {shard.get('index')}/{shard.get('count')}" if isinstance(shard, dict) else "session"
                texts.append(f"{where}: gate {run.get('gate', '?')} (exit {run.get('exit_status', '?')})")
            rows.append(("Runs", "; ".join(texts)))
        return rows


def build_view(results: RunResults, baseline_source: str | None = None) -> ReportView:
    speedup = _speedups(results.cases)
    views = []
    for case in results.cases:
        params = case.params
        accuracy_text, accuracy_failed = accuracy_cell(getattr(case, "accuracy", None))
        views.append(
            CaseView(
                case=case,
                label=label_of(case),
                model=str(params.get("model", case.id)),
                precision=str(params.get("precision", "")),
                batch_size=params.get("batch_size") if isinstance(params.get("batch_size"), int) else None,
                shape=str(params.get("shape") or ""),
                suite=str(params.get("suite", "")),
                deltas=[_delta(c, case.metrics) for c in case.comparisons if is_comparison(c)],
                speedup_vs_fp32=speedup.get(case.id),
                accuracy=accuracy_text,
                accuracy_failed=accuracy_failed,
            )
        )
    counts = {label: 0 for label in ALWAYS_COUNTED}
    for view in views:
        counts[view.label] = counts.get(view.label, 0) + 1
    ordered = dict(sorted(counts.items(), key=lambda kv: LABELS.index(kv[0]) if kv[0] in LABELS else len(LABELS)))
    return ReportView(results=results, cases=views, counts=ordered, baseline_source=baseline_source)


def _float(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


def _delta(data: dict[str, Any], measured: dict[str, Any]) -> Delta:
    """One comparison, showing as "current" the case's measured value (the one every table shows for the case); the
    gate's own current value, which may be a median of trial values scaled to the baseline's runner speed, is kept
    as ``compared`` where it reads differently."""
    metric = str(data["metric"])
    known = {"metric", "current", "baseline", "change", "tolerance", "verdict"}
    tolerance = data.get("tolerance")
    gate_value = _float(data["current"])
    own = measured.get(metric)
    current = float(own) if isinstance(own, (int, float)) and not isinstance(own, bool) else gate_value
    differs = math.isfinite(gate_value) and format_value(metric, gate_value) != format_value(metric, current)
    return Delta(
        metric=metric,
        label=METRICS[metric].label if metric in METRICS else metric,
        compared=gate_value if differs else None,
        current=current,
        baseline=_float(data["baseline"]),
        change=_float(data["change"]),
        tolerance=float(tolerance) if isinstance(tolerance, (int, float)) and math.isfinite(tolerance) else 0.0,
        verdict=str(data.get("verdict", "")),
        extra={k: v for k, v in data.items() if k not in known},
    )


def _speedups(cases: list[CaseResult]) -> dict[str, float]:
    """Case id -> throughput speed-up vs the fp32 case of the same model, batch and shape (harness.core.results owns the
    rule; results.json stores the same list under "speedups")."""
    return {s["id"]: float(s["speedup_vs_fp32"]) for s in speedups(cases)}
