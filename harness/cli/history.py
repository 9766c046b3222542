"""``harness history``: the run history store (harness.history) from the command line.

``import`` back-fills the store from saved results; ``show`` prints the series of a metric per case. The
subcommands are listed once, in :data:`SUBCOMMANDS`; each gets ``--history URL`` (default ``$HARNESS_HISTORY``, else
``sqlite:///.harness-history.db``) and opens the store with :func:`open_store`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from harness.core.errors import HarnessError
from harness.core.metrics import METRICS, resolve_metric
from harness.history.importing import import_results
from harness.history.series import Series
from harness.history.store import DEFAULT_URL, ENV_VAR, HistoryStore, parse_since

EXIT_NO_SERIES = 1  # `show` found nothing to print (like grep without a match)


@dataclass(frozen=True)
class Subcommand:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def history_url(value: str | None) -> str:
    """The store a command uses: ``--history``, else ``$HARNESS_HISTORY``, else the SQLite file in this folder."""
    return value or os.environ.get(ENV_VAR) or DEFAULT_URL


def open_store(args: argparse.Namespace) -> HistoryStore:
    return HistoryStore(history_url(args.history))


# -- import ----------------------------------------------------------------------------------------------------------
def _import_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="+", metavar="RESULTS", help="results.json files, or folders holding them (CI artifacts)"
    )


def import_(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        outcome = import_results(store, args.inputs)
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


# The subcommands, in the order `harness history --help` lists them; each also gets --history URL.
SUBCOMMANDS: Mapping[str, Subcommand] = MappingProxyType(
    {
        "import": Subcommand(
            "back-fill the store from saved results files or folders (idempotent: a stored run is skipped)",
            _import_args,
            import_,
        ),
        "show": Subcommand("print the series of a metric per case, oldest run first", _show_args, show),
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
