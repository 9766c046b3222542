"""The calibration's figures as text: a table per mode, the quietest tolerance, the measuring time, the targets and
one verdict line per mode for CI to read (``verdict baseline: met``)."""

from __future__ import annotations

from typing import Any

from harness.calibrate.evaluating import TARGETS, TOLERANCE_GRID


def render(report: dict[str, Any], factors: tuple[float, ...]) -> list[str]:
    titles = ["A/A false alarms"] + [f"+{(f - 1):.0%} detected" for f in factors]
    s = report["settings"]
    lines = [
        "",
        f"gate: tolerance {s['tolerance']:.1%}, alpha {s['alpha']}, {s['trials']} trials, "
        f"confirmation {_confirmation(s)};  naive: median:{s['naive_threshold']:.0%} on the same data",
        "",
        f"against a baseline ({_baseline(s)}, as pytest against baselines/; {_layout(s)}):",
        *table(report, ("1.0", *(str(f) for f in factors)), titles),
        "noise floor: 99% of A/A median-latency changes (as the gate sees them) are within "
        f"+-{report['noise_floor_p99']:.1%}",
        quietest_line(report.get("quietest"), factors),
        f"measuring time: gate {report['gate_seconds_per_case']:.2f} s per case (trials, warm-ups, confirmations) = "
        f"{report['time_ratio']:.2f}x a single-trial run ({report['single_trial_seconds_per_case']:.2f} s)",
    ]
    if "paired" in report:
        paired = report["paired"]
        lines += [
            "",
            f"interleaved A/B (jobs of {paired['pairs']} pairs, as --ab-base / --ab-backend-option):",
            *table(paired, ("twin", *(str(f) for f in factors)), titles),
            quietest_line(paired.get("quietest"), factors),
            f"measuring time: gate {paired['gate_seconds_per_case']:.2f} s per case (both variants, confirmations) = "
            f"{paired['time_ratio']:.2f}x a single-trial run of both ({paired['single_trial_seconds_per_case']:.2f} s)",
        ]
    lines += [
        "",
        f"calibration took {report['elapsed_s']:.0f} s",
        "targets (against a baseline): " + "; ".join(targets(report, factors)),
    ]
    if "paired" in report:
        lines.append("targets (interleaved A/B): " + "; ".join(targets(report["paired"], factors, aa="twin")))
    lines.append(verdict_line("baseline", targets(report, factors)))
    if "paired" in report:
        lines.append(verdict_line("ab", targets(report["paired"], factors, aa="twin")))
    return lines


def verdict_line(mode: str, targets: list[str]) -> str:
    """One line per mode (``baseline``: against a stored baseline; ``ab``: interleaved A/B) for CI to read:
    ``verdict baseline: met``, or ``verdict baseline: MISSED (A/A false alarms 3.6% > 1%; ...)`` naming each target
    missed, from the ``targets`` items of :func:`targets`."""
    flipped = {" <= ": " > ", " >= ": " < "}
    missed = []
    for target in (t.removesuffix(" MISSED") for t in targets if t.endswith("MISSED")):
        for sign, opposite in flipped.items():
            target = target.replace(sign, opposite)
        missed.append(target)
    outcome = f"MISSED ({'; '.join(missed)})" if missed else "met"
    return f"verdict {mode}: {outcome}"


def targets(report: dict[str, Any], factors: tuple[float, ...], aa: str = "1.0") -> list[str]:
    overall = report["overall"]
    out = []
    fa = overall[aa]["gate_rate"]
    ok = "ok" if fa <= TARGETS["false_alarm"] else "MISSED"
    out.append(f"A/A false alarms {fa:.1%} <= {TARGETS['false_alarm']:.0%} {ok}")
    for f, key in ((1.10, "detect_10"), (1.05, "detect_5")):
        label = next((str(x) for x in factors if abs(x - f) < 1e-9), None)
        if label is not None:
            rate = overall[label]["gate_rate"]
            ok = "ok" if rate >= TARGETS[key] else "MISSED"
            out.append(f"+{f - 1:.0%} detected {rate:.1%} >= {TARGETS[key]:.0%} {ok}")
    if "time_ratio" not in report:
        return out
    ratio = report["time_ratio"]
    out.append(
        f"time {ratio:.2f}x <= {TARGETS['time_ratio']:.0f}x {'ok' if ratio <= TARGETS['time_ratio'] else 'MISSED'}"
    )
    return out


def table(figures: dict[str, Any], conditions: tuple[str, ...], titles: list[str]) -> list[str]:
    header = ["case", *(f"{t} (gate | naive)" for t in titles)]

    def cell(fig: dict[str, Any]) -> str:
        return (
            f"{fig['gate_alarms']}/{fig['comparisons']} {fig['gate_rate']:.1%} | "
            f"{fig['naive_alarms']}/{fig['comparisons']} {fig['naive_rate']:.1%}"
        )

    rows = [[cid, *(cell(figs[c]) for c in conditions)] for cid, figs in figures["cases"].items()]
    rows.append(["overall", *(cell(figures["overall"][c]) for c in conditions)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()

    ambiguous = ", ".join(
        f"{t.split()[0]} {figures['overall'][c]['gate_ambiguous']}/{figures['overall'][c]['comparisons']}"
        for t, c in zip(titles, conditions, strict=True)
    )
    return [
        fmt(header),
        fmt(["-" * w for w in widths]),
        *map(fmt, rows),
        f"ambiguous (flagged, not failing): {ambiguous}",
    ]


def quietest_line(found: dict[str, Any] | None, factors: tuple[float, ...]) -> str:
    target = f"A/A false alarms <= {TARGETS['false_alarm']:.0%}"
    if found is None:
        return f"quietest tolerance ({target}): none up to {TOLERANCE_GRID[-1]:.0%}"
    detected = ", ".join(f"+{f - 1:.0%} detected {found['detected'][str(f)]:.1%}" for f in factors)
    return (
        f"quietest tolerance ({target}): {found['tolerance']:.0%} "
        f"({found['false_alarms']}/{found['comparisons']} false alarms); there {detected}"
    )


def _confirmation(settings: dict[str, Any]) -> str:
    if not settings["confirm"]:
        return "off"
    if settings.get("confirm_in", "same-process") == "same-process":
        return "on (same process)"
    return "on (in a fresh process; its start and build are not counted in the measuring time)"


def _baseline(settings: dict[str, Any]) -> str:
    processes = settings.get("baseline_processes", 1)
    if processes == 1:
        return "one run's trials vs another's"
    return f"the trials of {processes} runs pooled, as --baseline-processes {processes} records them, vs another run's"


def _layout(settings: dict[str, Any]) -> str:
    # Calibrations saved before the layout was recorded interleaved their trials round by round.
    if settings.get("layout", "interleaved") == "interleaved":
        return "trials interleaved across cases and conditions, as pytest on CPU backends"
    return "a case's trials back to back, as pytest --no-interleave"
