"""The table printed at the end of a pytest session.

The verdict column says what failed (``error``, ``nonfinite``, ``accuracy``, ``regressed``, ...) and, where one word
would hide it, why (harness.view.verdicts.verdict_text), so the table agrees with the HTML and markdown reports.
Latencies have 3 significant digits (harness.core.metrics.format_ms); a case whose comparison the speed probe corrected
is marked ``*`` with a footnote, and the counts line says how many cases warned of a high latency CV.
"""

from __future__ import annotations

import math

from harness.core.metrics import format_change, format_ms, format_nonfinite
from harness.core.results import CaseResult, RunResults
from harness.view.cells import nonfinite_phrases
from harness.view.verdicts import baseline_value, cv_warned, outcome, probe_correction, verdict_text

PROBE_MARK = "*"


def _ms(value: float | None) -> str:
    return format_ms(value)


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if math.isfinite(value) else format_nonfinite(value)


def _build_row(case: CaseResult) -> tuple[str, ...]:
    m, build = case.metrics, case.build or {}
    base = (case.baseline or {}).get("metrics", {})
    change = next((c for c in case.comparisons if c["metric"] == "build_time_ms"), None)
    hit = build.get("cache_hit")
    return (
        case.id,
        _ms(m.get("build_time_ms")),
        f"{m['engine_bytes'] / 2**20:.2f}" if "engine_bytes" in m else "-",
        "-" if hit is None or not m else ("hit" if hit else "miss"),
        _ms(base.get("build_time_ms")),
        format_change(change["change"]) if change else "-",
        verdict_text(case),
    )


def _counts_line(counts: dict[str, int], cv_warnings: int) -> str:
    """``verdicts: 1 regressed, 5 unchanged; 2 CV warnings``."""
    line = "verdicts: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    if cv_warnings:
        line += f"; {cv_warnings} CV warning{'s' if cv_warnings != 1 else ''}"
    return line


def summary_lines(results: RunResults) -> list[str]:
    env = results.environment
    backend = env.get("backend", {})
    header = ("case", "p50 ms", "p99 ms", "samples/s", "base p50", "delta", "verdict")
    rows: list[tuple[str, ...]] = []
    build_only = any(c.measure.get("build_only") for c in results.cases)
    if build_only:  # --build-only: build time, engine size and whether the engine cache served it
        header = ("case", "build ms", "engine MiB", "cache", "base build", "delta", "verdict")
    for case in results.cases:
        if build_only:
            rows.append(_build_row(case))
            continue
        m = case.metrics
        latency = next((c for c in case.comparisons if c["metric"] == "latency_median_ms"), None)
        rows.append(
            (
                case.id + (f" {PROBE_MARK}" if probe_correction(case) else ""),
                _ms(m.get("latency_median_ms")),
                _ms(m.get("latency_p99_ms")),
                _rate(m.get("throughput_sps")),
                _ms(baseline_value(case, "latency_median_ms")),
                format_change(latency["change"]) if latency else "-",
                verdict_text(case),
            )
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(w) if i in (0, 6) else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )

    counts: dict[str, int] = {}
    for case in results.cases:
        label = outcome(case)
        counts[label] = counts.get(label, 0) + 1
    lines = [
        f"{backend.get('name')} {backend.get('version')} on {env.get('cpu', {}).get('model')}"
        f"{' / ' + env['gpus'][0]['name'] if env.get('uses_gpu') and env.get('gpus') else ''}"
        f"  (baseline key {env.get('key')})",
        fmt(header),
        fmt(tuple("-" * w for w in widths)),
        *map(fmt, rows),
        _counts_line(counts, sum(1 for c in results.cases if cv_warned(c))),
    ]
    corrected = [(c.id, probe_correction(c)) for c in results.cases if probe_correction(c)]
    if corrected:  # the delta shown is at the baseline's runner speed, not the raw one: say so
        lines.append(
            f"{PROBE_MARK} compared at the baseline's runner speed (speed probe): "
            + ", ".join(f"{case_id} ({how})" for case_id, how in corrected)
        )
    flagged = [(c.id, nonfinite_phrases(c.reference_nonfinite)) for c in results.cases if c.reference_nonfinite]
    for case_id, phrases in flagged:  # a finding even where the case passed: the model computes NaN / inf here
        lines.append(f"non-finite fp32 outputs: {case_id}: {'; '.join(phrases)}")
    if build_only:
        built = [c.build for c in results.cases if c.build and "build_phase_ms" in c.build]
        hits = sum(1 for b in built if b.get("cache_hit"))
        phase_s = sum(float(b["build_phase_ms"]) for b in built) / 1e3
        lines.append(f"build phase: {phase_s:.1f} s for {len(built)} engines, {hits} served from the engine cache")
    return lines
