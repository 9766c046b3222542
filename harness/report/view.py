"""What the reports show, computed once from result records: verdict labels, counts, table rows, deltas.

The HTML page, the markdown summary and the plots all read this view, so a number (a delta, a speed-up, a count)
is computed in one place and every report agrees with the others. The view reads only result records
(:mod:`harness.core.results`); fields that other stages add later (accuracy, telemetry, trials) are shown when present
and skipped when absent, so an older results file still renders.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from harness.core.metrics import (
    METRICS,
    brief_label,
    format_change,
    format_ms,
    format_nonfinite,
    format_p_value,
    format_value,
)
from harness.core.results import CaseResult, RunResults, all_nonfinite

# Display order: what a reviewer must act on first. "failed" is a case that errored (or failed for a reason other
# than a regression, e.g. --strict-baselines or accuracy); "passed" is a measured case without a verdict.
LABELS = ("regressed", "failed", "ambiguous", "missing", "improved", "unchanged", "new", "skipped", "passed")
ALWAYS_COUNTED = ("regressed", "improved", "unchanged", "ambiguous", "new", "failed", "skipped")
BAD_LABELS = frozenset({"regressed", "failed"})  # the run fails; "ambiguous" and "missing" only warn


def label_of(case: CaseResult) -> str:
    """The one word a report shows for a case: the gate's verdict, or what pytest made of it."""
    if case.verdict == "missing":  # a baseline case that did not run (harness.report.rebase)
        return "missing"
    if case.status == "skipped":
        return "skipped"
    if case.status == "error":
        return "failed"
    if case.status == "failed" and case.verdict not in ("regressed", "ambiguous"):
        return "failed"
    return case.verdict or ("passed" if case.status == "passed" else case.status)


def outcome(case: CaseResult) -> str:
    """What happened to a case, in the word a reader acts on: what failed (``error``, ``nonfinite``, ``accuracy``,
    ``regressed``, ``ambiguous`` with --fail-on-ambiguous, ``failed``), else the gate's verdict or pytest's status.

    ``nonfinite``: an output of the fp32 reference held no finite value (harness.run.precision); ``accuracy``: the
    typed outputs failed their tolerance, NaN / infinities the precision introduced included."""
    if case.verdict == "missing":
        return "missing"
    if case.status in ("skipped", "error"):
        return case.status
    if case.status == "failed":
        if all_nonfinite(case.reference_nonfinite or {}):
            return "nonfinite"
        if (case.accuracy or {}).get("failures"):
            return "accuracy"
        return case.verdict if case.verdict in ("regressed", "ambiguous") else "failed"
    return case.verdict or case.status


def verdict_text(case: CaseResult) -> str:
    """The verdict column of the terminal table and the reports: :func:`outcome`, why in brackets where one word
    would hide it, and ``, nonfinite`` when the fp32 outputs held NaN / infinities. E.g. ``regressed (latency p50
    +18.7%)``, ``accuracy (NaN/inf)``, ``unchanged (latency p50 decided; throughput +14.2%: judged on CPU time)``."""
    word = outcome(case)
    detail = _detail(case, word)
    text = f"{word} ({detail})" if detail else word
    if case.reference_nonfinite and word != "nonfinite":
        text += ", nonfinite"
    return text


def _detail(case: CaseResult, word: str) -> str:
    comparisons = [c for c in case.comparisons if _is_comparison(c)]
    if word == "accuracy":
        outputs = ((case.accuracy or {}).get("outputs") or {}).values()
        nonfinite = any(isinstance(o, dict) and o.get("nonfinite") for o in outputs)
        parts = ["NaN/inf" if nonfinite else failed_criterion(case.accuracy)]
        parts.append("regressed" if case.verdict == "regressed" else "")
        return ", ".join(p for p in parts if p)
    if word == "failed" and case.verdict == "new":
        return "no baseline; --strict-baselines"
    if word in ("regressed", "improved"):
        return ", ".join(f"{brief_label(c['metric'])} {_change(c)}" for c in comparisons if c.get("verdict") == word)
    if word == "ambiguous":
        return "; ".join(_undecided(c) for c in comparisons if c.get("verdict") == "ambiguous")
    if word == "unchanged":
        moved = [c for c in comparisons if _beyond_tolerance(c)]
        if not moved:
            return ""
        decided = [brief_label(c["metric"]) for c in comparisons if not _beyond_tolerance(c)]
        head = [f"{' and '.join(decided)} decided"] if decided else []
        return "; ".join(head + [_undecided(c) for c in moved])
    return ""


def _change(c: dict[str, Any]) -> str:
    change = c.get("change")
    return format_change(float(change)) if isinstance(change, (int, float)) else "?"


def _beyond_tolerance(c: dict[str, Any]) -> bool:
    change, tolerance = c.get("change"), c.get("tolerance")
    return isinstance(change, (int, float)) and isinstance(tolerance, (int, float)) and abs(change) > tolerance


def _undecided(c: dict[str, Any]) -> str:
    """A comparison beyond its tolerance that was not counted, and what the gate based that on."""
    note = str(c.get("note") or "")
    p_value = c.get("p_value")
    if note.startswith("runner contended"):
        why = "judged on CPU time"
    elif "CPU time per inference moved" in note:
        why = "CPU time did not move"
    elif isinstance(p_value, (int, float)) and c.get("method") != "tolerance":
        why = f"not significant, {format_p_value(float(p_value))}"
    elif c.get("method") in ("mann-whitney", "wilcoxon-paired"):
        why = "too few trials"
    else:
        why = ""
    text = f"{brief_label(str(c['metric']))} {_change(c)}"
    return f"{text}: {why}" if why else text


def not_deciding(c: dict[str, Any]) -> str:
    """Why a comparison beyond its tolerance did not decide the verdict, for a footnote or a tooltip: ``throughput
    +14.2% beyond 10%: not deciding; judged on CPU time``; "" when it is within tolerance or decided."""
    if not _beyond_tolerance(c) or c.get("verdict") in ("regressed", "improved"):
        return ""
    text = _undecided(c)
    head, _, why = text.partition(": ")
    tolerance = float(c["tolerance"])
    return f"{head} beyond {tolerance:.0%}: not deciding" + (f"; {why}" if why else "")


_PROBE_NOTE = re.compile(r"the runner ran ([0-9.]+% (?:slower|faster)) \(speed probe\)")


def probe_correction(case: CaseResult) -> str:
    """``runner 4.1% slower``: how the speed probe corrected the case's comparisons (harness.judge.gate notes it on each
    comparison it scaled to the baseline's runner speed); "" when it did not."""
    for c in case.comparisons:
        found = _PROBE_NOTE.search(str(c.get("note") or "")) if isinstance(c, dict) else None
        if found:
            return f"runner {found.group(1)}"
    return ""


def cv_warned(case: CaseResult) -> bool:
    """The case warned of a latency CV above trtexec's 2.5% (harness.measure.loop, harness.measure.trials)."""
    return any(str(w).startswith("latency CV") for w in case.warnings)


def baseline_value(case: CaseResult, metric: str) -> float | None:
    """The baseline value a case's change was computed against (the gate's comparison), else the recorded one."""
    compared = next((c for c in case.comparisons if _is_comparison(c) and c["metric"] == metric), None)
    for value in (
        (compared or {}).get("baseline"),
        ((case.baseline or {}).get("metrics") or {}).get(metric),
    ):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def failed_criterion(accuracy: Any) -> str:
    """``min_cosine 0.041 < 0.9`` (``+2 more`` when several failed): the accuracy criteria an accuracy record
    failed (harness.judge.accuracy.Failure), worst first as recorded; "" for a record without them."""
    failed = (accuracy or {}).get("failed_criteria") if isinstance(accuracy, dict) else None
    briefs = [str(f["brief"]) for f in failed or [] if isinstance(f, dict) and f.get("brief")]
    if not briefs:
        return ""
    return briefs[0] + (f" (+{len(briefs) - 1} more)" if len(briefs) > 1 else "")


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe, unique form of any text (model names may hold ``<``, ``/`` or spaces)."""
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "x"
    return f"{base}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"


@dataclass
class Delta:
    """One gated metric of one case against its baseline (from the gate's recorded comparison)."""

    metric: str
    label: str
    current: float
    baseline: float
    change: float  # relative, +0.12 == 12 % higher than the baseline
    tolerance: float
    verdict: str
    extra: dict[str, Any] = field(default_factory=dict)  # anything else the gate recorded (p-value, interval...)

    compared: float | None = None  # the gate's own current value (per-trial median, probe-scaled) when it differs

    @property
    def current_text(self) -> str:
        return format_value(self.metric, self.current)

    @property
    def not_deciding(self) -> str:
        """``throughput +14.2% beyond 10%: not deciding; judged on CPU time``, or ""."""
        return not_deciding(
            {"metric": self.metric, "change": self.change, "tolerance": self.tolerance, "verdict": self.verdict}
            | self.extra
        )

    @property
    def baseline_text(self) -> str:
        return format_value(self.metric, self.baseline)

    @property
    def change_text(self) -> str:
        return format_change(self.change)

    @property
    def evidence(self) -> str:
        """The gate's statistics when it recorded them: p-value, interval of the change, trials per side."""
        parts = []
        p_value, low, high = self.extra.get("p_value"), self.extra.get("ci_low"), self.extra.get("ci_high")
        if isinstance(p_value, (int, float)):
            parts.append(format_p_value(p_value))
        if isinstance(low, (int, float)) and isinstance(high, (int, float)) and abs(low) < 1e6 and abs(high) < 1e6:
            parts.append(f"interval {low:+.1%}..{high:+.1%}")
        trials = self.extra.get("trials")
        method = self.extra.get("method")
        if isinstance(trials, (list, tuple)) and len(trials) == 2 and method not in (None, "tolerance"):
            noun = "pairs" if method == "wilcoxon-paired" else "trials"
            sizes = f"{trials[0]} {noun}" if noun == "pairs" else f"{trials[0]} vs {trials[1]} trials"
            parts.append(sizes if isinstance(p_value, (int, float)) else f"{sizes}: too few to tell from noise")
        if self.extra.get("note"):
            parts.append(str(self.extra["note"]))
        if self.compared is not None:
            parts.append(f"compared as {format_value(self.metric, self.compared)}: the median of the trials' values")
        return "; ".join(parts)

    @property
    def tolerance_text(self) -> str:
        return f"{self.tolerance:.0%}" if self.tolerance == round(self.tolerance, 2) else f"{self.tolerance:.1%}"


@dataclass
class CaseView:
    case: CaseResult
    label: str
    model: str
    precision: str
    batch_size: int | None
    shape: str
    suite: str
    deltas: list[Delta]
    speedup_vs_fp32: float | None
    accuracy: str  # one short cell, "" when the record has none
    accuracy_failed: bool

    @property
    def id(self) -> str:
        return self.case.id

    def metric(self, name: str) -> float | None:
        value = self.case.metrics.get(name)
        if value is None and name in ("build_time_ms", "engine_bytes"):
            value = self.case.build.get(name)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def delta(self, metric: str) -> Delta | None:
        return next((d for d in self.deltas if d.metric == metric), None)

    @property
    def worst_delta(self) -> Delta | None:
        """The gated comparison that moved most in the bad direction (what a regression line leads with)."""

        def badness(d: Delta) -> float:
            higher_better = METRICS[d.metric].higher_is_better if d.metric in METRICS else False
            return -d.change if higher_better else d.change

        return max(self.deltas, key=badness) if self.deltas else None

    @property
    def telemetry(self) -> dict[str, Any]:
        value = getattr(self.case, "telemetry", None)
        return value if isinstance(value, dict) and value.get("status", "ok") == "ok" else {}

    @property
    def sm_clock_mhz(self) -> float | None:
        """Median SM clock during the measured loop (NVML), when sampled."""
        clock = self.telemetry.get("sm_clock_mhz")
        value = clock.get("median") if isinstance(clock, dict) else clock
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def telemetry_flags(self) -> list[str]:
        flags = self.telemetry.get("flags")
        return [str(f) for f in flags] if isinstance(flags, list) else []

    @property
    def recipe_text(self) -> str:
        """The precision recipe's facts (harness.recipes record), for a tooltip; "" when none was recorded."""
        recipe = getattr(self.case, "recipe", None)
        if not isinstance(recipe, dict) or not recipe:
            return ""
        parts = [f"recipe {recipe['recipe']}" if recipe.get("recipe") else ""]
        if isinstance(recipe.get("size_bytes"), (int, float)):
            parts.append(f"typed model {size(recipe['size_bytes'])}")
        if isinstance(recipe.get("conversion_time_ms"), (int, float)):
            cached = " (cached)" if recipe.get("cache_hit") else ""
            parts.append(f"conversion {recipe['conversion_time_ms']:.0f} ms{cached}")
        return ", ".join(p for p in parts if p)

    @property
    def cache_hit(self) -> bool | None:
        value = self.case.build.get("cache_hit")
        return value if isinstance(value, bool) else None

    @property
    def verdict_text(self) -> str:
        return verdict_text(self.case)

    @property
    def accuracy_failure(self) -> str:
        """``min_cosine 0.041 < 0.9``: the accuracy criterion the case failed, "" when none is recorded."""
        return failed_criterion(self.case.accuracy)

    @property
    def probe_correction(self) -> str:
        return probe_correction(self.case)

    @property
    def outcome(self) -> str:
        return outcome(self.case)

    @property
    def inputs(self) -> list[dict[str, str]]:
        """What was fed, one row per input: name, shape (``1x128``), dtype, range (inclusive) and the rule that chose
        the values; empty when the record has none (older results, or a case that failed before its inputs)."""
        return input_rows(getattr(self.case, "inputs", None))

    @property
    def nonfinite(self) -> list[str]:
        """One phrase per fp32 output holding NaN / infinities, e.g. ``'y': 12 of 4096 (12 NaN)``."""
        return nonfinite_phrases(getattr(self.case, "reference_nonfinite", None))

    @property
    def message_lines(self) -> list[str]:
        return [line for line in (self.case.message or "").splitlines() if line.strip()]

    @property
    def reasons(self) -> list[str]:
        """The message lines without the leading ``<case id>: `` that the gate and session put there."""
        prefix = f"{self.id}: "
        return [line.removeprefix(prefix) for line in self.message_lines]


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
                deltas=[_delta(c, case.metrics) for c in case.comparisons if _is_comparison(c)],
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


def _is_comparison(data: Any) -> bool:
    """A recorded gate comparison: a metric name and numbers (null allowed) for current, baseline and change."""
    if not isinstance(data, dict) or not isinstance(data.get("metric"), str):
        return False
    numbers = [data.get(k, "") for k in ("current", "baseline", "change")]
    return all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in numbers)


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
    try:
        from harness.core.results import speedups
    except ImportError:  # an older harness.core.results: no speed-ups rather than a second definition here
        return {}
    return {s["id"]: float(s["speedup_vs_fp32"]) for s in speedups(cases)}


def accuracy_cell(accuracy: Any) -> tuple[str, bool]:
    """A short text for the table (worst output first) and whether any output failed its check."""
    if not isinstance(accuracy, dict) or not accuracy:
        return "", False
    outputs = accuracy.get("outputs")
    if isinstance(outputs, dict):
        per_output = [v for v in outputs.values() if isinstance(v, dict)]
    elif isinstance(outputs, list):
        per_output = [v for v in outputs if isinstance(v, dict)]
    else:
        per_output = [accuracy]
    failed = _failed(accuracy) or any(_failed(o) for o in per_output)
    parts = []

    def values(*names: str) -> list[float]:
        return [v for v in (_num(o, *names) for o in per_output) if v is not None]

    cosines = values("cosine", "cosine_similarity")
    if cosines:
        parts.append(f"cos {min(cosines):.4f}")
    top1 = values("top1_agreement", "top1", "top_1_agreement")
    if top1:
        parts.append(f"top-1 {min(top1):.1%}")
    abs_err = values("max_abs_error", "max_abs_err", "max_abs")
    if abs_err:
        parts.append(f"abs {max(abs_err):.2g}")
    rel_err = values("max_rel_error", "max_rel_err", "max_rel")
    if rel_err and not abs_err:
        parts.append(f"rel {max(rel_err):.2g}")
    verdict = "FAIL" if failed else ("pass" if parts or "passed" in accuracy else "")
    criterion = failed_criterion(accuracy)
    if criterion:
        verdict = f"FAIL: {criterion}"
    text = " · ".join(p for p in [verdict, *parts] if p)
    return text, failed


def input_rows(inputs: Any) -> list[dict[str, str]]:
    """The ``inputs`` record of a case (harness.core.results.CaseResult.inputs) as text cells; malformed parts show
    ``?``."""
    if not isinstance(inputs, dict):
        return []
    rows = []
    for name, info in inputs.items():
        info = info if isinstance(info, dict) else {}
        shape, value_range = info.get("shape"), info.get("range")
        rows.append(
            {
                "name": str(name),
                "shape": "x".join(str(d) for d in shape) if isinstance(shape, (list, tuple)) else "?",
                "dtype": str(info.get("dtype", "?")),
                "range": (
                    f"{_number_text(value_range[0])}..{_number_text(value_range[1])}"
                    if isinstance(value_range, (list, tuple)) and len(value_range) == 2
                    else "?"
                ),
                "rule": str(info.get("rule") or ""),
            }
        )
    return rows


def inputs_line(inputs: Any) -> str:
    """All inputs on one line: ``input_ids int64[1x128] 0..999 (indexes ...); attention_mask ...``."""
    parts = []
    for row in input_rows(inputs):
        text = f"{row['name']} {row['dtype']}[{row['shape']}] {row['range']}"
        parts.append(f"{text} ({row['rule']})" if row["rule"] else text)
    return "; ".join(parts)


def _number_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:g}" if math.isfinite(value) else format_nonfinite(value)


def nonfinite_phrases(counts: Any) -> list[str]:
    """``'y': 12 of 4096 (12 NaN)`` per output of a ``reference_nonfinite`` record."""
    if not isinstance(counts, dict):
        return []
    out = []
    for name, c in counts.items():
        if not isinstance(c, dict):
            continue
        kinds = [(c.get("nan"), "NaN"), (c.get("posinf"), "+inf"), (c.get("neginf"), "-inf")]
        present = [(n, label) for n, label in kinds if isinstance(n, int) and n > 0]
        total = sum(n for n, _ in present)
        detail = ", ".join(f"{n} {label}" for n, label in present)
        out.append(f"'{name}': {total} of {c.get('elements', '?')} ({detail})")
    return out


def _failed(data: dict[str, Any]) -> bool:
    if data.get("passed") is False or data.get("pass") is False or data.get("failures"):
        return True
    return str(data.get("verdict", data.get("status", ""))).lower() in ("fail", "failed")


def _num(data: dict[str, Any], *names: str) -> float | None:
    for name in names:
        value = data.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def environment_line(env: dict[str, Any]) -> str:
    """The environment in one line: backend, hardware, commit, date."""
    backend = env.get("backend") or {}
    cpu = env.get("cpu") or {}
    gpus = env.get("gpus") or []
    hardware = gpus[0].get("name", "GPU") if env.get("uses_gpu") and gpus else f"{cpu.get('model', 'unknown CPU')}"
    if not (env.get("uses_gpu") and gpus) and cpu.get("count"):
        hardware += f" ({cpu['count']} CPUs)"
    elif gpus and env.get("uses_gpu"):
        hardware += f", driver {gpus[0].get('driver', '?')}"
    commit = env.get("commit") or {}
    parts = [f"{backend.get('name', '?')} {backend.get('version', '')}".strip(), hardware]
    if commit.get("id"):
        parts.append(
            f"commit {str(commit['id'])[:10]}{' (dirty)' if commit.get('dirty') else ''}"
            + (f" on {commit['branch']}" if commit.get("branch") else "")
        )
    if env.get("date"):
        parts.append(str(env["date"]))
    if env.get("key"):
        parts.append(f"key {env['key']}")
    return " · ".join(parts)


def environment_rows(env: dict[str, Any], cases: list[CaseView] | None = None) -> list[tuple[str, str]]:
    """Label / value pairs for the report header; only facts that are present."""
    rows: list[tuple[str, str]] = []
    backend = env.get("backend") or {}
    if backend:
        settings = backend.get("settings") or {}
        text = f"{backend.get('name', '?')} {backend.get('version', '')}".strip()
        if settings:
            text += " (" + ", ".join(f"{k}={v}" for k, v in sorted(settings.items())) + ")"
        rows.append(("Backend", text))
    for gpu in env.get("gpus") or []:
        facts = [
            gpu.get("name", "GPU"),
            f"driver {gpu['driver']}" if gpu.get("driver") else "",
            f"CUDA {gpu['cuda_driver']}" if gpu.get("cuda_driver") else "",
            f"sm {gpu['compute_capability']}" if gpu.get("compute_capability") else "",
            f"{gpu['memory_bytes'] / 2**30:.0f} GiB" if isinstance(gpu.get("memory_bytes"), (int, float)) else "",
        ]
        rows.append((f"GPU {gpu.get('index', '')}".strip(), ", ".join(f for f in facts if f)))
    cpu = env.get("cpu") or {}
    if cpu:
        rows.append(
            ("CPU", f"{cpu.get('model', '?')}, {cpu.get('count', '?')} CPUs, {cpu.get('arch', '')}".strip(", "))
        )
    for key, label in (("os", "OS"), ("python", "Python"), ("harness_version", "Harness"), ("hostname", "Host")):
        if env.get(key):
            rows.append((label, str(env[key])))
    commit = env.get("commit") or {}
    if commit.get("id"):
        text = str(commit["id"]) + (" (dirty)" if commit.get("dirty") else "")
        if commit.get("branch"):
            text += f" on {commit['branch']}"
        rows.append(("Commit", text))
    if env.get("date"):
        rows.append(("Date", str(env["date"])))
    if env.get("key"):
        rows.append(("Baseline key", str(env["key"])))
    notes = clock_notes(env, cases or [])
    rows.append(("Clocks", "; ".join(notes) if notes else "no throttling or clock notes recorded"))
    return rows


def clock_notes(env: dict[str, Any], cases: list[CaseView]) -> list[str]:
    """Clock and throttling facts from GPU telemetry and measurement warnings, one line per distinct note."""
    notes: list[str] = []
    telemetry = env.get("telemetry")
    if isinstance(telemetry, dict) and telemetry.get("status") not in (None, "ok") and env.get("uses_gpu"):
        # Only worth saying on a GPU run: there the clocks could not be watched (a CPU run needs no NVML).
        notes.append(f"GPU telemetry {telemetry.get('status')}: {telemetry.get('reason', 'no reason recorded')}")
    for gpu in env.get("gpus") or []:
        limits = [
            f"max SM {gpu['max_sm_clock_mhz']:.0f} MHz"
            if isinstance(gpu.get("max_sm_clock_mhz"), (int, float))
            else "",
            f"max memory {gpu['max_mem_clock_mhz']:.0f} MHz"
            if isinstance(gpu.get("max_mem_clock_mhz"), (int, float))
            else "",
            f"power limit {gpu['power_limit_w']:.0f} W" if isinstance(gpu.get("power_limit_w"), (int, float)) else "",
            f"persistence mode {'on' if gpu['persistence_mode'] else 'off'}" if "persistence_mode" in gpu else "",
        ]
        if any(limits):
            notes.append(f"GPU {gpu.get('index', '')}: " + ", ".join(x for x in limits if x))
    clocks = [c.sm_clock_mhz for c in cases if c.sm_clock_mhz is not None]
    if clocks:
        notes.append(f"SM clock during measurement (median per case): {min(clocks):.0f}–{max(clocks):.0f} MHz")
    throttled: dict[str, list[str]] = {}
    for view in cases:
        telemetry = getattr(view.case, "telemetry", None)
        reasons = view.telemetry_flags or (_throttle_reasons(telemetry) if isinstance(telemetry, dict) else [])
        for reason in reasons:
            throttled.setdefault(reason, []).append(view.id)
    for reason, ids in throttled.items():
        shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        notes.append(f"{reason} ({shown})")
    return [n for n in notes if n]


def _throttle_reasons(telemetry: dict[str, Any]) -> list[str]:
    """Throttling named in a telemetry record that carries no ready-made ``flags``."""
    reasons: list[str] = []
    for key, value in telemetry.items():
        if "throttl" not in key.lower() or isinstance(value, bool):
            continue
        if isinstance(value, (list, tuple)):
            reasons.extend(f"throttled: {v}" for v in value if v)
        elif isinstance(value, dict):
            reasons.extend(f"throttled: {k}" for k, v in value.items() if v)
        elif value:
            reasons.append(f"throttled: {value}" if isinstance(value, str) else f"{key} seen")
    return reasons


def ms(value: float | None) -> str:
    """Milliseconds with 3 significant digits (harness.core.metrics.format_ms): 0.0123, 4.56, 87.0, 302, 1230."""
    return "–" if value is None else format_ms(value)


def whole(value: float | None) -> str:
    """A count or a time in whole units with thousands separators: 1,234."""
    if value is None:
        return "–"
    return f"{value:,.0f}" if math.isfinite(value) else format_nonfinite(value)


def sps(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.1f}" if math.isfinite(value) else format_nonfinite(value)


def size(value: float | None) -> str:
    if value is None:
        return "–"
    if not math.isfinite(value):
        return format_nonfinite(value)
    if value >= 2**20:
        return f"{value / 2**20:.1f} MiB"
    return f"{value / 2**10:.0f} KiB" if value >= 2**10 else f"{value:.0f} B"
