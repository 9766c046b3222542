"""Table cells from result records: units (ms, counts, samples/s, sizes), the accuracy cell, the inputs fed, the NaN /
infinities of the fp32 outputs and file-name-safe slugs.

Every function takes a plain record value and returns text, and shows ``?`` or ``–`` for what is malformed or
absent, so a hand-edited or older results file still renders.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

from harness.core.metrics import format_ms, format_nonfinite


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
