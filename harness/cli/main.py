"""``harness`` command line: work on suites and saved results without pytest.

The subcommands are listed once, in :data:`COMMANDS`: each is a help line, the function that adds its arguments and
the function that runs it. ``init``, ``merge`` and ``calibrate`` live in their own modules (``add_arguments`` and
``run``); the short ones are here. Nothing ends in a traceback: a user's mistake or a refused write (disk full,
read-only folder) is one line on stderr and exit status 2; a defect of the harness is one line saying where its
traceback was logged, and exit status 70 (``EX_SOFTWARE`` of sysexits.h).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from harness import __version__
from harness.backends import get_backend
from harness.calibrate import command as calibrate
from harness.cli import explain, history, init, merge
from harness.core.errors import HarnessError, internal_error_line, log_internal_error, output_error
from harness.core.fsio import require_writable
from harness.history.store import HistoryStore
from harness.machine.environment import fingerprint
from harness.models.sources import check_sources
from harness.report import append_step_summary, write_reports
from harness.report.openmetrics import check_metrics_file, write_metrics_file
from harness.suite.load import load_suite

Run = Callable[[argparse.Namespace], int]
EXIT_USAGE = 2
EXIT_INTERNAL = 70


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Run


def _validate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suites", nargs="+", help="suite YAML files")


def validate(args: argparse.Namespace) -> int:
    for path in args.suites:
        suite = load_suite(path)
        check_sources(suite)
        cases = suite.cases()
        print(f"{path}: suite '{suite.name}', {len(cases)} cases")
        for case in cases:
            print(f"  {case.id}")
    return 0


def _key_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="onnxruntime")


def key(args: argparse.Namespace) -> int:
    backend = get_backend(args.backend)
    print(fingerprint(backend.name, backend.version(), uses_gpu=backend.uses_gpu)["key"])
    return 0


def _report_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="a results.json written by a benchmark run or by harness merge")
    parser.add_argument(
        "--baseline",
        metavar="PATH",
        help="judge against this instead of the recorded baselines: another run's results.json, "
        "a baseline file, or a baseline directory such as baselines/",
    )
    parser.add_argument("-o", "--output", metavar="DIR", help="report directory (default: the results file's folder)")
    parser.add_argument(
        "--no-step-summary",
        action="store_true",
        help="do not append summary.md to $GITHUB_STEP_SUMMARY even when GitHub Actions sets it",
    )
    parser.add_argument(
        "--metrics-file",
        metavar="PATH",
        help="also write the results as OpenMetrics text to PATH (atomically), e.g. into node_exporter's textfile "
        "collector folder as harness.prom",
    )
    parser.add_argument(
        "--history",
        metavar="URL",
        help="add a trend plot per case from this history store (sqlite:///PATH.db, postgresql://USER@HOST/DB or a "
        "file path), with its change points and the baseline marked",
    )


def report(args: argparse.Namespace) -> int:
    results = Path(args.results)
    if results.is_dir():
        results = results / "results.json"
    out_dir = Path(args.output) if args.output else results.parent
    require_writable(out_dir, "-o" if args.output else "-o/--output")
    if args.metrics_file:
        check_metrics_file(args.metrics_file)
    if args.history:  # asked for by name: a store that cannot be read is this command's error, before any work
        HistoryStore(args.history, create=False).close()
    files = write_reports(results, out_dir, baseline=args.baseline, history=args.history)
    print(files.headline)
    for path in (files.html, files.markdown, files.benchmark_json):
        print(f"  {path}")
    print(f"  {files.out_dir / 'plots'}/ ({len(files.plots)} PNG)")
    if args.metrics_file and files.results is not None:
        print(f"  {write_metrics_file(files.results, args.metrics_file)} (OpenMetrics text)")
    if not args.no_step_summary and append_step_summary(files.summary):
        print("  summary appended to $GITHUB_STEP_SUMMARY")
    return 0


# The subcommands, in the order `harness --help` lists them; read-only, so nothing adds a command elsewhere.
COMMANDS: Mapping[str, Command] = MappingProxyType(
    {
        "init": Command(
            "write a starter suite for an ONNX model and print the command that runs it", init.add_arguments, init.run
        ),
        "validate": Command("check suite files and list their cases", _validate_args, validate),
        "key": Command("print this machine's baseline key for a backend", _key_args, key),
        "merge": Command(
            "merge shard or worker results into one results file, report and summary", merge.add_arguments, merge.run
        ),
        "report": Command(
            "write report.html, plots/, summary.md and benchmark.json from a results file", _report_args, report
        ),
        "explain": Command(
            "show where each case's time went: the layer groups whose time changed most against a baseline profile",
            explain.add_arguments,
            explain.run,
        ),
        "history": Command(
            "the run history store: import saved results, show a case's series, detect its change points, plot trends",
            history.add_arguments,
            history.run,
        ),
        "calibrate": Command(
            "measure the gate's false-alarm and detection rates on this runner (A/A and injected slowdowns)",
            calibrate.add_arguments,
            calibrate.run,
        ),
    }
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Work on benchmark suites and saved results without pytest (benchmarks run with: pytest SUITE).",
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.help, description=command.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except HarnessError as exc:
        print(f"harness {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # the environment refused a read or a write the command did not expect to fail
        print(f"harness {args.command}: error: {output_error(exc, exc.filename or '?')}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"harness {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a defect: the user gets one line, the traceback goes to a log file
        log = log_internal_error(exc, getattr(args, "report_dir", None))
        print(f"harness {args.command}: {internal_error_line(exc, log)}", file=sys.stderr)
        return EXIT_INTERNAL
