"""pytest plugin: suite files become one test per case; the session hooks write results and print the summary.

Registered through the ``pytest11`` entry point, so ``pytest benchmarks`` works after ``pip install -e .``; from a
plain checkout use ``python -m pytest -p harness.pytest_plugin benchmarks``.

The hooks live here, since pytest loads hooks from the entry-point module; the options are in
:mod:`~harness.pytest_plugin.options`, the run's state and its harness session in :mod:`~harness.pytest_plugin.state`,
suite files collected as tests in :mod:`~harness.pytest_plugin.collect`, ``--shard`` in
:mod:`~harness.pytest_plugin.shard` and the session-end bookkeeping (pytest-xdist included) in
:mod:`~harness.pytest_plugin.workers`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
from filelock import BaseFileLock, Timeout

from harness.core.errors import HarnessError, OutputError, internal_error_line, log_internal_error, output_error
from harness.core.fsio import locked, writable_dir_problem
from harness.core.results import RunResults
from harness.pytest_plugin import options, shard, workers
from harness.pytest_plugin.collect import case_of, check_case
from harness.pytest_plugin.state import cases_of, session_of, state_of
from harness.report import append_step_summary, write_reports
from harness.report.openmetrics import check_metrics_file, write_metrics_file
from harness.report.terminal import summary_lines
from harness.run.session import HarnessSession

# Suite files collected as tests (pytest my_suite.yaml, pytest benchmarks/): collect's hooks are registered by
# pytest through this list, as those of a plugin's own module.
pytest_plugins = ["harness.pytest_plugin.collect"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "inference benchmark harness")
    options.add_run_options(group)
    shard.add_options(group)  # --shard I/N, --shard-durations FILE (CI matrices)
    workers.add_options(group)  # --worker-gpus (pytest-xdist: one worker per GPU)
    options.add_gate_options(group)
    options.add_ini_options(parser)


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before xdist's own answer, the CPU count
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` starts one pytest-xdist worker per GPU (harness.pytest_plugin.workers)."""
    return workers.auto_num_workers(config)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs an NVIDIA GPU; skipped with a reason elsewhere")
    state = state_of(config)
    if config.getoption("interleave", None) is True and getattr(config.option, "numprocesses", None):
        raise pytest.UsageError("--interleave measures every case in one process; run it without -n (pytest-xdist)")
    # Shard filter and session-end bookkeeping (run record; xdist workers' results merged by the controller).
    state.recorder = workers.configure(config, shard.configure(config))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "harness_case" not in metafunc.fixturenames:
        return
    try:
        cases = cases_of(metafunc.config)
    except HarnessError as exc:
        # Reported by pytest_collection_modifyitems as a one-line usage error, not a collection traceback.
        state_of(metafunc.config).error = str(exc)
        cases = []
    metafunc.parametrize("harness_case", cases, ids=[c.id for c in cases])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = state_of(config)
    if state.error:
        raise pytest.UsageError(state.error)
    cases = [case for item in items if (case := case_of(item)) is not None]
    if not cases:
        return
    session = session_of(config)
    # Everything that would stop the run later is checked before anything is measured: an unknown backend or a bad
    # option, an output folder that cannot be written, a baseline file that cannot be used.
    try:
        suites = list({c.suite.name: c.suite for c in cases}.values())
        for suite in suites:
            session.backend_for(suite)
        check_output_folders(session)
        if (metrics := options.metrics_file(config)) is not None:
            check_metrics_file(metrics)
        if not config.option.collectonly:  # listing the cases writes nothing: it may run beside a real run
            state.report_claim = claim_report_dir(session)
            options.check_history(config)  # a bad --history URL or an unreachable server, before anything is measured
        if not session.config.update_baselines:
            for suite in suites:
                key = session.environment(session.backend_for(suite))["key"]
                session.store(key).load(suite.name)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    except Exception as exc:
        _internal_exit(config, exc)


def check_output_folders(session: HarnessSession) -> None:
    """Refuse, before anything is measured, an output folder that is a file, cannot be created or cannot be
    written: found after an hour of measuring, it would cost the hour."""
    config = session.config
    folders = [("--report-dir", session.results_path.parent), ("--harness-cache", Path(config.cache_dir))]
    if config.update_baselines:
        folders.append(("--baseline-dir", Path(config.baseline_dir)))
    for option, folder in folders:
        problem = writable_dir_problem(folder)
        if problem:
            raise OutputError(f"{option} {folder}: {problem}; point {option} at a writable folder")


def claim_report_dir(session: HarnessSession) -> BaseFileLock:
    """Hold ``results.json`` of this run for the whole session, so a second run started into the same --report-dir
    (two shards or jobs on one runner) is refused at once instead of replacing this run's file with its own. The
    lock is the kernel's (harness.core.fsio.locked): a killed run never leaves it behind."""
    claim = locked(session.results_path, timeout_s=0)
    try:
        claim.acquire()
    except Timeout:
        folder = session.results_path.parent
        raise OutputError(
            f"--report-dir {folder}: another harness run is writing {session.results_path.name} there now; "
            "give each concurrent run its own --report-dir (and merge them with harness merge)"
        ) from None
    return claim


def _internal_exit(config: pytest.Config, exc: BaseException) -> None:
    """A defect of the harness: keep the traceback in a log file, stop the session with one line saying where."""
    log = log_internal_error(exc, options.report_dir(config))
    pytest.exit(f"harness: {internal_error_line(exc, log)}", returncode=pytest.ExitCode.INTERNAL_ERROR)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """--interleave: measure every selected case (after -k, --shard and deselection) round by round across cases,
    then let the items run and judge what was measured. Without --interleave or --no-interleave this is done for
    the cases of CPU backends (harness.run.session.HarnessSession.measure_interleaved), except under pytest-xdist,
    whose workers each run their own items."""
    config = session.config
    explicit = config.getoption("interleave")
    if explicit is False or session.testsfailed or config.option.collectonly:
        return
    if explicit is None and (getattr(config.option, "numprocesses", None) or workers.is_worker(config)):
        return
    cases = [case for item in session.items if (case := case_of(item)) is not None]
    if not cases:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def progress(line: str) -> None:
        if reporter is not None:
            reporter.write_line(f"harness interleave: {line}")

    try:
        session_of(config).measure_interleaved(cases, progress, explicit=explicit is True)
    except Exception as exc:  # measure_interleaved leaves each case's own failure to its item; this is a defect
        _internal_exit(config, exc)


@pytest.fixture(scope="session")
def harness_session(pytestconfig: pytest.Config) -> HarnessSession:
    return session_of(pytestconfig)


@pytest.fixture
def harness_check(harness_session: HarnessSession) -> Any:
    """Run a case and turn its result into the test outcome (:func:`check_case`)."""
    return functools.partial(check_case, harness_session)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the reports next to results.json; on GitHub Actions append summary.md to $GITHUB_STEP_SUMMARY."""
    config = session.config
    state = state_of(config)
    hsession = state.session
    if hsession is None or hsession.results is None or not hsession.results.cases:
        return
    if workers.is_worker(config):
        return  # an xdist worker: the controller reports on (and records) the merged results
    options.append_history(config, hsession.results)  # before the reports: a failing report cannot cost it
    write_metrics(config, hsession.results)
    if config.getoption("no_reports"):
        return
    try:
        files = write_reports(
            hsession.results,
            hsession.results_path.parent,
            source=str(hsession.results_path),
            history=options.history_url(config),  # the trend section, from the store the run was just appended to
        )
        append_step_summary(files.summary)
    except OSError as exc:  # the benchmark outcome stands; the summary says what was not written
        state.report_error = str(output_error(exc, exc.filename or hsession.results_path.parent, "--report-dir"))
    except HarnessError as exc:
        state.report_error = str(exc)
    except Exception as exc:  # a defect in the reports must not hide the benchmark outcome either
        state.report_error = internal_error_line(exc, log_internal_error(exc, hsession.results_path.parent))
    else:
        state.report = files


def write_metrics(config: pytest.Config, results: RunResults) -> None:
    """``--metrics-file``: the run as OpenMetrics text (harness.report.openmetrics), with --no-reports too."""
    path = options.metrics_file(config)
    if path is None:
        return
    state = state_of(config)
    try:
        state.metrics_file = write_metrics_file(results, path)
    except HarnessError as exc:  # the benchmark outcome stands; the summary says what was not written
        state.metrics_error = str(exc)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = state_of(config)
    session = state.session
    if session is None or session.results is None or not session.results.cases:
        return
    terminalreporter.section("benchmark summary")
    try:
        lines = summary_lines(session.results)
    except Exception as exc:  # a defect of the table must not hide where the results and reports are
        lines = [f"harness: {internal_error_line(exc, log_internal_error(exc, session.config.report_dir))}"]
    for line in lines:
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"results: {session.results_path}")
    if state.report is not None:
        terminalreporter.write_line(f"report: {state.report.html} (summary.md, benchmark.json, plots/ beside it)")
    if state.report_error:
        terminalreporter.write_line(f"report: not written: {state.report_error}", red=True)
    if state.metrics_file is not None:
        terminalreporter.write_line(f"metrics: {state.metrics_file} (OpenMetrics text)")
    if state.metrics_error:
        terminalreporter.write_line(f"metrics: not written: {state.metrics_error}", red=True)
    if state.write_error:
        terminalreporter.write_line(f"results: not all written: {state.write_error}", red=True)
    if session.config.update_baselines:
        terminalreporter.write_line(
            f"baselines updated under {session.config.baseline_dir / session.results.environment['key']}"
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    """Let go of the report folder (claim_report_dir): a later session in this process may write there again."""
    claim = state_of(config).report_claim
    if claim is not None:
        claim.release()
