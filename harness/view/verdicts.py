"""The words a report shows for a case: its label, its outcome, the verdict text with its why, and the notes of a
comparison that moved beyond its tolerance without deciding.

The terminal table, the HTML page and the markdown summary all word a verdict through these functions, so they
agree. The inputs are the gate's recorded comparisons (harness.judge.gate), read as plain dictionaries.
"""

from __future__ import annotations

import re
from typing import Any

from harness.core.metrics import brief_label, format_change, format_p_value
from harness.core.results import CaseResult, all_nonfinite
from harness.view.cells import failed_criterion

# Display order: what a reviewer must act on first. "failed" is a case that errored (or failed for a reason other
# than a regression, e.g. --strict-baselines or accuracy); "passed" is a measured case without a verdict.
LABELS = ("regressed", "failed", "ambiguous", "missing", "improved", "unchanged", "new", "skipped", "passed")
ALWAYS_COUNTED = ("regressed", "improved", "unchanged", "ambiguous", "new", "failed", "skipped")
BAD_LABELS = frozenset({"regressed", "failed"})  # the run fails; "ambiguous" and "missing" only warn


def label_of(case: CaseResult) -> str:
    """The one word a report shows for a case: the gate's verdict, or what pytest made of it."""
    if case.verdict == "missing":  # a baseline case that did not run (harness.view.rebase)
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
    comparisons = [c for c in case.comparisons if is_comparison(c)]
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
    compared = next((c for c in case.comparisons if is_comparison(c) and c["metric"] == metric), None)
    for value in (
        (compared or {}).get("baseline"),
        ((case.baseline or {}).get("metrics") or {}).get(metric),
    ):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def is_comparison(data: Any) -> bool:
    """A recorded gate comparison: a metric name and numbers (null allowed) for current, baseline and change."""
    if not isinstance(data, dict) or not isinstance(data.get("metric"), str):
        return False
    numbers = [data.get(k, "") for k in ("current", "baseline", "change")]
    return all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in numbers)
