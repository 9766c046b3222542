"""``harness`` command line: work on suites and saved results without pytest.

Each subcommand is a small function registered in :data:`COMMANDS`. Nothing ends in a traceback: a user's mistake
or a refused write (disk full, read-only folder) is one line on stderr and exit status 2; a defect of the harness is
one line saying where its traceback was logged, and exit status 70 (``EX_SOFTWARE`` of sysexits.h).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from harness.core.errors import HarnessError, internal_error_line, log_internal_error, output_error

Run = Callable[[argparse.Namespace], int]
EXIT_USAGE = 2
EXIT_INTERNAL = 70
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Run]] = {}


def command(name: str, help_text: str, configure: Callable[[argparse.ArgumentParser], None]) -> Callable[[Run], Run]:
    """Register ``run(args) -> exit status`` under ``name``; ``configure(parser)`` adds its arguments."""

    def register(run: Run) -> Run:
        COMMANDS[name] = (help_text, configure, run)
        return run

    return register


def _init_args(parser: argparse.ArgumentParser) -> None:
    from harness.cli.init import add_arguments

    add_arguments(parser)


@command("init", "write a starter suite for an ONNX model and print the command that runs it", _init_args)
def init(args: argparse.Namespace) -> int:
    from harness.cli.init import run

    return run(args)


def _validate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suites", nargs="+", help="suite YAML files")


@command("validate", "check suite files and list their cases", _validate_args)
def validate(args: argparse.Namespace) -> int:
    from harness.suite.schema import load_suite

    for path in args.suites:
        suite = load_suite(path)
        cases = suite.cases()
        print(f"{path}: suite '{suite.name}', {len(cases)} cases")
        for case in cases:
            print(f"  {case.id}")
    return 0


def _key_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="onnxruntime")


@command("key", "print this machine's baseline key for a backend", _key_args)
def key(args: argparse.Namespace) -> int:
    from harness.backends import get_backend
    from harness.machine.environment import fingerprint

    backend = get_backend(args.backend)
    print(fingerprint(backend.name, backend.version(), uses_gpu=bool(getattr(backend, "uses_gpu", False)))["key"])
    return 0


def _merge_args(parser: argparse.ArgumentParser) -> None:
    from harness.run.merge import add_arguments

    add_arguments(parser)


@command("merge", "merge shard or worker results into one results file, report and summary", _merge_args)
def merge(args: argparse.Namespace) -> int:
    from harness.run.merge import run

    return run(args)


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


@command("report", "write report.html, plots/, summary.md and benchmark.json from a results file", _report_args)
def report(args: argparse.Namespace) -> int:
    from harness.report import append_step_summary, write_reports

    results = Path(args.results)
    if results.is_dir():
        results = results / "results.json"
    out_dir = Path(args.output) if args.output else results.parent
    require_writable(out_dir, "-o" if args.output else "-o/--output")
    files = write_reports(results, out_dir, baseline=args.baseline)
    print(files.headline)
    for path in (files.html, files.markdown, files.benchmark_json):
        print(f"  {path}")
    print(f"  {files.out_dir / 'plots'}/ ({len(files.plots)} PNG)")
    if not args.no_step_summary and append_step_summary(files.summary):
        print("  summary appended to $GITHUB_STEP_SUMMARY")
    return 0


def _calibrate_args(parser: argparse.ArgumentParser) -> None:
    from harness.calibrate.command import add_arguments

    add_arguments(parser)


@command(
    "calibrate",
    "measure the gate's false-alarm and detection rates on this runner (A/A and injected slowdowns)",
    _calibrate_args,
)
def calibrate(args: argparse.Namespace) -> int:
    from harness.calibrate.command import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    from harness import __version__

    parser = argparse.ArgumentParser(
        prog="harness",
        description="Work on benchmark suites and saved results without pytest (benchmarks run with: pytest SUITE).",
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, configure, _run) in COMMANDS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def require_writable(folder: Path, option: str) -> None:
    """Refuse an output folder that cannot take files before any work is done (one line naming the option)."""
    from harness.core.fsio import writable_dir_problem

    problem = writable_dir_problem(folder)
    if problem:
        raise HarnessError(f"{option} {folder}: {problem}; point {option} at a writable folder")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][2](args)
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
