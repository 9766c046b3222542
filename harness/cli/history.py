"""``harness history``: the run history store (harness.history) from the command line.

``import`` back-fills the store from saved results; ``show`` prints the series of a metric per case; ``detect``
prints their change points (:mod:`harness.history.changes`), keeps them in the store's ``change_points`` table for
dashboards, and fails a nightly job on a new one; ``plot`` writes their trend PNGs. The subcommands are listed
once, in :data:`SUBCOMMANDS`; each gets ``--history URL`` (default ``$HARNESS_HISTORY``, else
``sqlite:///.harness-history.db``) and opens the store with :func:`open_store`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from harness.core.errors import HarnessError
from harness.core.fsio import atomic_write_bytes, require_writable
from harness.core.metrics import GATED_METRICS, METRICS, brief_label, format_change, format_p_value, resolve_metric
from harness.history.changes import ChangePoint
from harness.history.changes import detect as detect_changes
from harness.history.importing import import_results, read_runs
from harness.history.series import Series
from harness.history.store import DEFAULT_URL, ENV_VAR, HistoryStore, StoreReadOnly, parse_since
from harness.judge.baselines import BaselineStore
from harness.report.plots import trend_png
from harness.view.cells import slug
from harness.view.trends import Trend

EXIT_NO_SERIES = 1  # `show` found nothing to print (like grep without a match)
EXIT_CHANGED = 1  # `detect --newer-than`: a change point came after the given run (no series matching: exit 2)


@dataclass(frozen=True)
class Subcommand:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def history_url(value: str | None) -> str:
    """The store a command uses: ``--history``, else ``$HARNESS_HISTORY``, else the SQLite file in this folder."""
    return value or os.environ.get(ENV_VAR) or DEFAULT_URL


def open_store(args: argparse.Namespace, *, create: bool = False) -> HistoryStore:
    """The store of ``args``; only ``import`` creates one, the reading commands refuse a store that is not there."""
    return HistoryStore(history_url(args.history), create=create)


# -- import ----------------------------------------------------------------------------------------------------------
def _import_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="+", metavar="RESULTS", help="results.json files, or folders holding them (CI artifacts)"
    )


def import_(args: argparse.Namespace) -> int:
    runs = read_runs(args.inputs)  # every file checked before the store is opened, or created
    with open_store(args, create=True) as store:
        outcome = import_results(store, args.inputs, runs)
        for path, run_id in outcome.imported:
            print(f"  {path}: run {run_id} imported")
        for path, run_id in outcome.present:
            print(f"  {path}: run {run_id} already present")
        print(f"{len(outcome.imported)} imported, {len(outcome.present)} already present in {store.display}")
    return 0


# -- show ------------------------------------------------------------------------------------------------------------
def _show_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--case", default="*", metavar="GLOB", help="case ids, e.g. 'resnet50-*' (default: all)")
    parser.add_argument(
        "--metric",
        default=None,
        metavar="NAME",
        help="one metric, e.g. latency_median_ms or its short name latency, throughput, p99 (default: every one)",
    )
    parser.add_argument("--since", default=None, metavar="DATE", help="runs started on or after DATE (YYYY-MM-DD)")
    parser.add_argument("--suite", default=None, help="cases of this suite only")
    parser.add_argument("--key", default=None, metavar="BASELINE_KEY", help="runs under this baseline key only")


def show(args: argparse.Namespace) -> int:
    metric = _metric(args.metric) if args.metric else None
    since = parse_since(args.since) if args.since else None
    with open_store(args) as store:
        found = store.series(args.case, metric=metric, since=since, suite=args.suite, baseline_key=args.key)
        if not found:
            given = {"case": args.case, "metric": metric, "since": args.since, "suite": args.suite, "key": args.key}
            asked = " ".join(f"--{name} {value}" for name, value in given.items() if value is not None)
            print(f"no series in {store.display} matches {asked}", file=sys.stderr)
            return EXIT_NO_SERIES
    for series in found:
        for line in series_lines(series):
            print(line)
    return 0


def _metric(name: str) -> str:
    canonical = resolve_metric(name)
    if canonical is None:
        raise HarnessError(f"--metric {name}: unknown metric; one of {', '.join(METRICS)}")
    return canonical


def series_lines(series: Series) -> list[str]:
    """A heading naming the series, then one line per run, oldest first: time, commit, branch, value, trials
    (their spread as the range over the median), verdict."""
    metric = METRICS.get(series.metric)
    label, unit = (metric.label, metric.unit) if metric else (series.metric, "")
    runs = len(series.points)
    lines = [f"{series.suite} {series.case_id}: {label} ({series.metric}), {series.baseline_key}, {runs} run(s)"]
    for p in series.points:
        spread = ""
        if len(p.trials) > 1 and p.value:
            spread = f"  ±{(max(p.trials) - min(p.trials)) / 2 / abs(p.value):.1%} over {len(p.trials)} trials"
        cells = [p.time, (p.commit or "-")[:10], p.branch or "-", f"{_number(p.value)} {unit}".rstrip()]
        lines.append("  " + "  ".join(cells) + spread + (f"  {p.verdict}" if p.verdict else ""))
    return lines


def _number(value: float) -> str:
    """Four significant digits, without an exponent for large numbers (throughput, bytes)."""
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


# -- detect ----------------------------------------------------------------------------------------------------------
def _detect_args(parser: argparse.ArgumentParser) -> None:
    _series_args(parser, metric_default="the gated ones: " + ", ".join(GATED_METRICS))
    parser.add_argument(
        "--newer-than",
        metavar="RUN|COMMIT|DATE",
        help="exit 1 when a change point (in the bad direction, see --fail-on) came after this run id, the last run "
        "of this commit, or this date (YYYY-MM-DD): a nightly job that gives the last release's commit fails on a "
        "step or a slow drift since (exit 2: no series matches, or the store cannot be read)",
    )
    parser.add_argument(
        "--fail-on",
        choices=("worse", "any"),
        default="worse",
        help="which change points newer than --newer-than fail: those in the metric's bad direction (default), or "
        "improvements too",
    )


def detect(args: argparse.Namespace) -> int:
    metrics = [_metric(args.metric)] if args.metric else list(GATED_METRICS)
    since = parse_since(args.since) if args.since else None
    with open_store(args) as store:
        found = [
            s
            for metric in metrics
            for s in store.series(args.case, metric=metric, since=since, suite=args.suite, baseline_key=args.key)
        ]
        if not found:  # exit 2, not 1: a nightly job must not read a mistyped --case as a change point
            raise HarnessError(
                f"no series in {store.display} matches --case {args.case}; harness history show lists them"
            )
        after = newer_than(store, args.newer_than) if args.newer_than else None
        detections = [
            (series, detect_changes(series))
            for series in sorted(found, key=lambda s: (s.suite, s.case_id, s.metric, s.baseline_key))
        ]
        failing = 0
        for series, points in detections:
            for change in points:
                new = after is not None and (change.time, change.run_id) > after
                failing += new and (change.worse or args.fail_on == "any")
                print(change_line(series, change) + ("  NEW" if new else ""))
        keep_change_points(store, detections, partial=since is not None)
        changes = sum(len(points) for _, points in detections)
        tail = f"; {failing} newer than {args.newer_than}" if args.newer_than else ""
        print(f"{changes} change point(s) in {len(found)} series of {store.display}{tail}")
    return EXIT_CHANGED if failing else 0


def keep_change_points(
    store: HistoryStore, detections: list[tuple[Series, list[ChangePoint]]], *, partial: bool
) -> None:
    """Replace the detected series' rows of the store's ``change_points`` table with what was found. Not where
    ``--since`` cut the series short (the table holds whole-series detections), nor where the store is read-only:
    the change points are then printed only, and stderr says why."""
    if partial:
        print("history: change points not stored: --since analyses part of each series", file=sys.stderr)
        return
    try:
        store.replace_change_points(detections)
    except StoreReadOnly as exc:
        print(f"history: change points printed only: {exc}", file=sys.stderr)


def newer_than(store: HistoryStore, text: str) -> tuple[str, str]:
    """The (time, run id) a change point must come after: that of a run id, of the newest run of a commit (given in
    full or by a prefix of 7 or more characters), or the start of a date."""
    runs = store.runs()
    for run in runs:
        if run.run_id == text:
            return run.time, run.run_id
    if len(text) >= 7 and all(ch in "0123456789abcdef" for ch in text.lower()):
        of_commit = [r for r in runs if r.commit and r.commit.lower().startswith(text.lower())]
        if len({r.commit for r in of_commit}) > 1:
            raise HarnessError(
                f"--newer-than {text}: {len({r.commit for r in of_commit})} commits in {store.display} start with "
                "it; give more of the commit"
            )
        if of_commit:
            return of_commit[-1].time, of_commit[-1].run_id
    try:
        return parse_since(text), ""
    except HarnessError:
        raise HarnessError(
            f"--newer-than {text}: no run id or commit of {store.display} and not a date; give a run id "
            "(harness history show lists them), a commit or YYYY-MM-DD"
        ) from None


def change_line(series: Series, change: ChangePoint) -> str:
    """``zoo-cpu resnet50-fp32-b1 latency p50 [KEY]: +6.1% (4.01 -> 4.25 ms) at run R (2026-01-02), commits
    a..b, p<0.001, worse``"""
    unit = METRICS[series.metric].unit if series.metric in METRICS else ""
    levels = f"{_number(change.before)} -> {_number(change.after)} {unit}".rstrip()
    direction = "worse" if change.worse else "better"
    return (
        f"{series.suite} {series.case_id} {brief_label(series.metric)} [{series.baseline_key}]: "
        f"{format_change(change.change)} ({levels}) at run {change.run_id} ({change.time[:10]}), "
        f"commits {change.commits}, {format_p_value(change.p_value)}, {direction}"
    )


# -- plot ------------------------------------------------------------------------------------------------------------
def _plot_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="the folder the PNGs are written to")
    _series_args(parser, metric_default="every one")
    parser.add_argument(
        "--baseline-dir",
        default="baselines",
        metavar="DIR",
        help="the committed baselines whose values are marked (default: baselines/; none is marked where none is "
        "stored)",
    )


def plot(args: argparse.Namespace) -> int:
    out = Path(args.out)
    require_writable(out, "--out")
    metric = _metric(args.metric) if args.metric else None
    since = parse_since(args.since) if args.since else None
    with open_store(args) as store:
        found = store.series(args.case, metric=metric, since=since, suite=args.suite, baseline_key=args.key)
        display = store.display
    drawn = 0
    for series in found:
        item = Trend(series, tuple(detect_changes(series)), _baseline_value(args.baseline_dir, series))
        png = trend_png(item)
        if png is None:
            continue
        name = "__".join((slug(series.suite), slug(series.case_id), series.metric, slug(series.baseline_key)))
        path = out / f"{name}.png"
        atomic_write_bytes(path, png)
        drawn += 1
        marks = f"{len(item.changes)} change point(s)" + (", baseline marked" if item.baseline is not None else "")
        print(f"  {path} ({len(series.points)} runs, {marks})")
    if not drawn:
        print(f"no series of two runs or more in {display} matches --case {args.case}", file=sys.stderr)
        return EXIT_NO_SERIES
    print(f"{drawn} trend plot(s) in {out}")
    return 0


def _baseline_value(root: str, series: Series) -> float | None:
    """The committed baseline's value of the series' metric, where one is stored for its key, suite and case."""
    entry = BaselineStore(Path(root), series.baseline_key).entry(series.suite, series.case_id)
    value = (entry or {}).get("metrics", {}).get(series.metric)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _series_args(parser: argparse.ArgumentParser, metric_default: str) -> None:
    parser.add_argument("--case", default="*", metavar="GLOB", help="case ids, e.g. 'resnet50-*' (default: all)")
    parser.add_argument(
        "--metric",
        default=None,
        metavar="NAME",
        help=f"one metric, e.g. latency or throughput (default: {metric_default})",
    )
    parser.add_argument("--since", default=None, metavar="DATE", help="runs started on or after DATE (YYYY-MM-DD)")
    parser.add_argument("--suite", default=None, help="cases of this suite only")
    parser.add_argument("--key", default=None, metavar="BASELINE_KEY", help="runs under this baseline key only")


# The subcommands, in the order `harness history --help` lists them; each also gets --history URL.
SUBCOMMANDS: Mapping[str, Subcommand] = MappingProxyType(
    {
        "import": Subcommand(
            "back-fill the store from saved results files or folders (idempotent: a stored run is skipped)",
            _import_args,
            import_,
        ),
        "show": Subcommand("print the series of a metric per case, oldest run first", _show_args, show),
        "detect": Subcommand(
            "find change points per case, metric and baseline key (PELT, then Hunter's t-test on windows), print them "
            "and keep them in the store's change_points table; exit 1 when one is newer than --newer-than, 2 when no "
            "series matches",
            _detect_args,
            detect,
        ),
        "plot": Subcommand(
            "write a trend PNG per case and metric, with change points and the committed baseline marked",
            _plot_args,
            plot,
        ),
    }
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="history_command", required=True, metavar="SUBCOMMAND")
    for name, command in SUBCOMMANDS.items():
        child = sub.add_parser(name, help=command.help, description=command.help)
        child.add_argument(
            "--history",
            default=None,
            metavar="URL",
            help=f"the history store: sqlite:///PATH.db, postgresql://USER@HOST/DB or a file path "
            f"(default: ${ENV_VAR}, else {DEFAULT_URL})",
        )
        command.add_arguments(child)


def run(args: argparse.Namespace) -> int:
    return SUBCOMMANDS[args.history_command].run(args)
