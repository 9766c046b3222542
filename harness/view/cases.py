"""One case as the reports show it: :class:`CaseView` (label, model, precision, batch, accuracy cell, telemetry,
inputs, reasons) and :class:`Delta`, one gated metric against its baseline with the gate's evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.core.metrics import METRICS, format_change, format_p_value, format_value
from harness.core.results import CaseResult
from harness.view.cells import failed_criterion, input_rows, nonfinite_phrases, size
from harness.view.verdicts import not_deciding, outcome, probe_correction, verdict_text


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
