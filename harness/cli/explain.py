"""``harness explain``: where the time of each case went, on the command line.

Per case: the end-to-end change of the profiled pass, the groups of layers with the largest deltas (label, baseline
ms, current ms, delta ms, % of the change, what changed), the groups after them added up, and the unattributed rest
(what the layers do not explain: launch gaps, host work). The rows are those of the report's "where the time went"
section (:mod:`harness.view.attribution`).

Without ``--baseline`` a case is explained against what its record holds: the diff the run recorded, else the profile
kept in its baseline entry. With ``--baseline`` it is diffed against that file's profile of the same case: a baseline
file or folder (``harness.baseline/*``), or another run's results.json, which is how the two TensorRT versions of an
upgrade check or the two jobs of an A/B comparison are compared.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.attribution.record import LayerProfile
from harness.core.errors import HarnessError
from harness.core.metrics import format_ms
from harness.core.results import CaseResult, RunResults
from harness.view.attribution import (
    NO_PROFILE,
    TOP_GROUPS,
    CaseAttribution,
    GroupRow,
    baseline_profiles,
    explain,
    percent,
    select_cases,
    signed_ms,
)
from harness.view.verdicts import label_of

LABEL_WIDTH = 56  # a longer group or layer name is cut with an ellipsis; results.json and report.html keep it whole


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="a results.json written by a benchmark run (or its folder)")
    parser.add_argument(
        "--baseline",
        metavar="PATH",
        help="diff against this file's layer profiles instead of the recorded ones: a baseline file or folder "
        "(baselines/KEY/SUITE.json) or another run's results.json (e.g. the other TensorRT version, the other A/B job)",
    )
    parser.add_argument("--case", metavar="ID|GLOB", help="only the case with this id, or the cases matching this glob")
    parser.add_argument(
        "--top", type=_positive, default=TOP_GROUPS, metavar="N", help=f"groups shown per case (default {TOP_GROUPS})"
    )


def run(args: argparse.Namespace) -> int:
    path = Path(args.results)
    if path.is_dir():
        path = path / "results.json"
    results = RunResults.read(path)
    cases = select_cases(results, args.case, str(path))
    baseline_of: Callable[[CaseResult], LayerProfile | None] | None = None
    source = ""
    if args.baseline:
        baseline_of, source = baseline_profiles(Path(args.baseline), results)
    explained: list[tuple[CaseResult, CaseAttribution]] = []
    unprofiled = []
    for case in cases:
        attribution = _attribution(case, baseline_of, source)
        if attribution is None:
            unprofiled.append(case.id)
        else:
            explained.append((case, attribution))
    if not explained:
        which = f"case '{cases[0].id}'" if len(cases) == 1 else f"any of its {len(cases)} selected cases"
        raise HarnessError(f"{path}: no layer profile for {which}; rerun without --no-profile")
    if args.baseline and all(a.diff is None for _, a in explained):
        raise HarnessError(
            f"--baseline {args.baseline}: no layer profile for the cases explained; record baselines with "
            "--update-baselines, or pass a results.json of a run that profiled them"
        )
    for index, (case, attribution) in enumerate(explained):
        if index:
            print()
        for line in case_lines(attribution, label_of(case), args.top):
            print(line)
    if unprofiled:
        shown = ", ".join(unprofiled[:8]) + (f" and {len(unprofiled) - 8} more" if len(unprofiled) > 8 else "")
        print(f"\n{NO_PROFILE}: {shown}")
    return 0


def _attribution(
    case: CaseResult, baseline_of: Callable[[CaseResult], LayerProfile | None] | None, source: str
) -> CaseAttribution | None:
    if baseline_of is None:
        return explain(case)
    baseline = baseline_of(case)
    if baseline is None:
        attribution = explain(case, rebased=True)
        if attribution is None:
            return None
        note = f"nothing to compare with: {source} holds no layer profile of this case"
        return CaseAttribution(case.id, attribution.model, attribution.profile, None, note=note)
    return explain(case, baseline, against=source)


def case_lines(attribution: CaseAttribution, label: str, top: int) -> list[str]:
    """The lines printed for one case: a head line, the groups table (or this run's slowest layers) and the tail."""
    diff = attribution.diff
    head = f"{attribution.case_id} ({label})" if label else attribution.case_id
    if diff is None:
        lines = [f"{head}: {attribution.note}", "  this run's slowest layers:"]
        rows: list[tuple[str, ...]] = [
            (_cut(layer.name), layer.kind, format_ms(layer.time_ms), percent(attribution.profile.share(layer)))
            for layer in attribution.profile.layers[:top]
        ]
        return lines + _table(("layer", "type", "ms", "% of layers"), rows, numeric=(2, 3))
    change = attribution.change
    relative = f", {change:+.1%}" if change is not None else ""
    lines = [
        f"{head}: end to end {format_ms(diff.baseline_ms)} -> {format_ms(diff.current_ms)} ms "
        f"({signed_ms(diff.delta_ms)} ms{relative}) against {attribution.against}"
    ]
    groups: list[GroupRow] = attribution.group_rows(top)
    rest = [row for row in (attribution.others(top), attribution.unattributed()) if row is not None]
    rows = [_group_cells(row) for row in groups + rest]
    lines += _table(("group", "baseline ms", "current ms", "delta ms", "% of change", "change"), rows, (1, 2, 3, 4))
    lines.append(f"  {attribution.where or 'where: no group changed beyond its noise'}")
    return lines


def _group_cells(row: GroupRow) -> tuple[str, ...]:
    change = "" if row.change == "unattributed" else row.change
    if change and not row.above_noise:
        change += " (within noise)"
    return (
        _cut(row.label),
        format_ms(row.baseline_ms),
        format_ms(row.current_ms),
        signed_ms(row.delta_ms),
        percent(row.share),
        change,
    )


def _cut(text: str) -> str:
    return text if len(text) <= LABEL_WIDTH else text[: LABEL_WIDTH - 1] + "…"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int]) -> list[str]:
    """Columns padded to their widest cell, numbers right-aligned, two spaces of indent."""
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        padded = [cell.rjust(width) if i in numeric else cell.ljust(width) for i, (cell, width) in pairs]
        return ("  " + "  ".join(padded)).rstrip()

    return [line(header), *(line(r) for r in rows)]
