"""``harness merge``: merge the results of several pytest sessions (CI shards, pytest-xdist workers) into one results
file, report and step summary, and exit with the merged run's gate (harness.run.merge decides what it is).

Exit status: 0 passed, 1 failed, 3 incomplete (a shard, a case or a session's end is missing), 2 unusable input.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from harness.core.fsio import atomic_write_text, require_writable, write_json
from harness.core.results import RESULTS_NAME, RunResults
from harness.history.store import ENV_VAR, HistoryStore, record_run
from harness.report import write_reports
from harness.report.markdown import escape
from harness.report.openmetrics import check_metrics_file, write_metrics_file
from harness.report.terminal import summary_lines
from harness.run.durations import durations_document, durations_of
from harness.run.merge import failures, find_results, merge, write_baselines
from harness.view.rebase import apply_baseline

EXIT_STATUS = {"passed": 0, "failed": 1, "incomplete": 3}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="results files, or folders holding them (e.g. downloaded artifacts)")
    parser.add_argument("--report-dir", default="reports", help="where the merged results and report go")
    parser.add_argument("-o", "--output", default=None, help="merged results file (default: REPORT_DIR/results.json)")
    parser.add_argument(
        "--expect-shards", type=int, default=None, metavar="N", help="fail unless shards 1..N all reported"
    )
    parser.add_argument(
        "--durations-out",
        default=None,
        metavar="FILE",
        help="also write case durations for --shard-durations; {key} in FILE becomes the results' baseline key",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="PATH",
        help="judge the merged cases against this instead of their recorded baselines: another run's results.json "
        "or a baseline folder (e.g. a TensorRT upgrade check: the candidate against the shipped version)",
    )
    parser.add_argument("--update-baselines", action="store_true", help="record the merged cases as the new baselines")
    parser.add_argument("--baseline-dir", default="baselines", help="baseline store for --update-baselines")
    parser.add_argument("--no-report", action="store_true", help="write the merged results file only")
    parser.add_argument(
        "--metrics-file",
        metavar="PATH",
        help="also write the merged results as OpenMetrics text to PATH (atomically), e.g. into node_exporter's "
        "textfile collector folder as harness.prom",
    )
    parser.add_argument(
        "--history",
        default=None,
        metavar="URL",
        help="append the merged run to a history store: sqlite:///PATH.db, postgresql://USER@HOST/DB or a file path "
        f"(default: ${ENV_VAR} when set)",
    )
    parser.add_argument(
        "--no-gate", action="store_true", help="exit 0 even when a shard is missing or failed (problems still shown)"
    )


def run(args: argparse.Namespace) -> int:
    """Merge, write results / report / summary, and return the merged run's exit status (:data:`EXIT_STATUS`)."""
    report_dir = Path(args.report_dir)
    output = Path(args.output) if args.output else report_dir / RESULTS_NAME
    files = find_results(args.inputs, exclude=output)
    # Every folder this command writes is checked before it writes anything (one line, exit 2).
    require_writable(output.parent, "-o/--output" if args.output else "--report-dir")
    if not args.no_report:
        require_writable(report_dir, "--report-dir")
    if args.update_baselines:
        require_writable(Path(args.baseline_dir), "--baseline-dir")
    if args.metrics_file:
        check_metrics_file(args.metrics_file)
    history_url = args.history or os.environ.get(ENV_VAR)
    history = HistoryStore(history_url) if history_url else None  # opened first: a bad URL stops before any write
    outcome = merge([(str(path), RunResults.read(path)) for path in files], args.expect_shards)
    if args.baseline:
        outcome.results, source = apply_baseline(outcome.results, Path(args.baseline))
        outcome.problems = outcome.incomplete + failures(outcome.results)
        print(f"judged against {source}")
    results = outcome.results
    results.write(output)
    print(f"merged {len(files)} file(s), {len(results.cases)} case(s) -> {output}")
    if history is not None:
        with history:
            print(record_run(history, results, "merge"))
    if args.durations_out:
        target = str(args.durations_out).replace("{key}", str(results.environment.get("key") or "unknown"))
        write_json(target, durations_document(durations_of(results)))
        print(f"durations of {len(durations_of(results))} case(s) -> {target}")
    if args.update_baselines:
        for path in write_baselines(results, Path(args.baseline_dir)):
            print(f"baselines updated: {path}")
    if args.metrics_file:
        print(f"metrics of {len(results.cases)} case(s) -> {write_metrics_file(results, args.metrics_file)}")
    if not args.no_report:
        summary = write_report(
            results, report_dir, outcome.problems, source=str(output), gate=outcome.gate, history=history_url
        )
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary:  # appended, not replaced: other steps of the job write there too
            with open(step_summary, "a", encoding="utf-8") as handle:
                handle.write(summary.read_text(encoding="utf-8").rstrip("\n") + "\n")
            print(f"summary appended to $GITHUB_STEP_SUMMARY ({step_summary})")
    for line in summary_lines(results) if results.cases else []:
        print(line)
    for problem in outcome.problems:
        print(f"gate: {problem}")
    print(f"gate: {outcome.gate if outcome.gate != 'failed' else 'FAILED'}")
    return 0 if args.no_gate else EXIT_STATUS[outcome.gate]


def write_report(
    results: RunResults,
    report_dir: Path,
    problems: list[str],
    source: str | None = None,
    gate: str | None = None,
    history: str | None = None,
) -> Path:
    """The report of the merged results through :mod:`harness.report`, plus the merge's own findings in the
    markdown summary; returns the summary's path (what goes to ``$GITHUB_STEP_SUMMARY`` and the PR comment)."""
    summary = report_dir / "summary.md"
    try:
        write_reports(results, report_dir, source=source, history=history)
    except Exception as exc:  # a broken report must not hide the merged gate: a plain summary keeps CI readable
        lines = summary_lines(results) if results.cases else ["no case results"]
        note = f"\nThe report could not be written: {escape(f'{type(exc).__name__}: {exc}')}\n"
        atomic_write_text(summary, "## Benchmark results\n\n```\n" + "\n".join(lines) + "\n```\n" + note)
    text = summary.read_text(encoding="utf-8") if summary.is_file() else "## Benchmark results\n"
    verdict = f"**{gate}**" if gate == "incomplete" else "passed" if not problems else "**failed**"
    section = "".join(
        [f"\n### Merged run: gate {verdict}\n", "\n" if problems else "", *(f"- {escape(p)}\n" for p in problems)]
    )
    atomic_write_text(summary, text.rstrip("\n") + "\n" + section)
    return summary
