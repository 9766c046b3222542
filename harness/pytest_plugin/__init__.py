"""pytest plugin: suite files become one test per case; the session hooks write results and print the summary.

Registered through the ``pytest11`` entry point, so ``pytest benchmarks`` works after ``pip install -e .``; from a
plain checkout use ``python -m pytest -p harness.pytest_plugin benchmarks``.
"""

from __future__ import annotations

import argparse
import functools
import glob
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.core.errors import HarnessError, OutputError, internal_error_line, log_internal_error, output_error
from harness.core.fsio import locked, writable_dir_problem
from harness.core.progress import Progress
from harness.pytest_plugin import shard, workers
from harness.run.session import HarnessSession, RunConfig
from harness.suite.schema import Case, load_suite, measure_value_problem

_STATE = pytest.StashKey[dict[str, Any]]()
# Suite files collected as tests (pytest my_suite.yaml, pytest benchmarks/). Imported by pytest, not by this module,
# so that pytest rewrites its asserts like any plugin's: the hooks below import case_of from it when they run.
pytest_plugins = ["harness.pytest_plugin.collect"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "inference benchmark harness")
    group.addoption(
        "--suite",
        action="append",
        default=[],
        metavar="PATH",
        help="suite YAML file or glob (repeatable); default: the ini option harness_suites",
    )
    group.addoption("--backend", default="onnxruntime", help="inference backend (default: onnxruntime)")
    group.addoption(
        "--backend-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="backend option, e.g. intra_op_threads=2 (repeatable; wins over the suite's)",
    )
    group.addoption("--baseline-dir", default=None, metavar="DIR", help="baseline store (default: baselines/)")
    group.addoption(
        "--update-baselines",
        action="store_true",
        help="record the cases that ran as the new baselines (others already stored are kept)",
    )
    group.addoption("--strict-baselines", action="store_true", help="fail cases that have no baseline")
    group.addoption(
        "--build-only",
        action="store_true",
        help="build (or fetch from the engine cache) every engine and gate build time and engine size; "
        "measure nothing (CI without a GPU)",
    )
    group.addoption(
        "--report-dir",
        default=None,
        metavar="DIR",
        help="where results.json and the reports (report.html, plots/, summary.md, benchmark.json) go "
        "(default: reports/)",
    )
    group.addoption(
        "--no-reports", action="store_true", help="write results.json only, no report.html, plots or summaries"
    )
    group.addoption(
        "--harness-cache",
        default=None,
        metavar="DIR",
        help="cache of prepared models and engines (default: .harness-cache/)",
    )
    group.addoption("--warmup-ms", type=float, default=None, help="override the suites' warm-up time (ms)")
    group.addoption("--min-duration-ms", type=float, default=None, help="override the suites' minimum duration (ms)")
    group.addoption("--min-iterations", type=int, default=None, help="override the suites' minimum iterations")
    shard.add_options(group)  # --shard I/N, --shard-durations FILE (CI matrices)
    workers.add_options(group)  # --worker-gpus (pytest-xdist: one worker per GPU)
    _add_gate_options(group)
    parser.addini(
        "harness_suites",
        type="linelist",
        default=[],
        help="suite files (globs) run when no --suite is given, relative to the rootdir",
    )


def _add_gate_options(group: Any) -> None:
    """Options of the noise-aware gate (harness.judge.gate), its calibration and A/B mode (harness.run.ab)."""
    group.addoption(
        "--trials",
        type=int,
        default=None,
        help="independent trials per case, sharing the suite's measuring time (default: the suite's, else 5)",
    )
    group.addoption(
        "--confirm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure a case that looks regressed again before failing it (default: on)",
    )
    group.addoption(
        "--fail-on-ambiguous",
        action="store_true",
        help="fail cases whose change beyond tolerance cannot be told from noise (default: flagged, passing)",
    )
    group.addoption(
        "--gate-alpha",
        type=float,
        default=None,
        metavar="P",
        help="one-sided significance level of the gate's tests (default 0.05)",
    )
    group.addoption(
        "--interleave",
        action="store_true",
        default=None,
        help="measure the trials of all selected cases round by round across cases before the items report "
        "(a slow spell of the runner then touches one trial of many cases; holds every engine at once). "
        "Default: on for CPU backends when more than one case runs in one process",
    )
    group.addoption(
        "--no-interleave",
        action="store_false",
        dest="interleave",
        help="measure each case's trials back to back when its item runs (every case recorded as it finishes)",
    )
    group.addoption(
        "--simulate-slowdown",
        type=float,
        default=None,
        metavar="FACTOR",
        help="make every inference of the selected cases FACTOR x slower (busy-wait), to check the gate catches it",
    )
    group.addoption(
        "--slowdown-cases",
        action="append",
        default=[],
        metavar="GLOB",
        help="case ids --simulate-slowdown applies to, e.g. 'squeezenet-fp32-b1' (repeatable; default: every case)",
    )
    group.addoption(
        "--ab-base",
        default=None,
        metavar="DIR",
        help="A/B mode: compare this checkout's models with the base branch's checkout in DIR, interleaved",
    )
    group.addoption("--ab-backend", default=None, metavar="NAME", help="A/B mode: run the candidate on this backend")
    group.addoption(
        "--ab-backend-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="A/B mode: the candidate's backend option, e.g. intra_op_threads=2 (repeatable)",
    )


def _gate_config(config: pytest.Config) -> dict[str, Any]:
    """RunConfig fields of the gate options; a bad combination is a usage error."""
    from harness.judge.gate import ALPHA
    from harness.run.ab import ABConfig

    factor = config.getoption("simulate_slowdown")
    if factor is not None and not 1.0 <= factor <= 100.0:
        raise HarnessError(f"--simulate-slowdown {factor}: give a factor between 1.0 and 100, e.g. 1.2 for +20%")
    if factor is not None and config.getoption("update_baselines"):
        raise HarnessError("--simulate-slowdown with --update-baselines would record fake baselines; drop one")
    if config.getoption("slowdown_cases") and factor is None:
        raise HarnessError("--slowdown-cases selects cases for --simulate-slowdown; give --simulate-slowdown FACTOR")
    trials = config.getoption("trials")
    if trials is not None and trials < 1:
        raise HarnessError(f"--trials {trials}: measure at least 1 trial (5 or more lets the gate tell noise apart)")
    alpha = config.getoption("gate_alpha")
    if alpha is not None and not 0.0 < alpha < 0.5:
        raise HarnessError(f"--gate-alpha {alpha}: give a level between 0 and 0.5, e.g. 0.05")
    ab = None
    ab_options = dict(_parse_option(o) for o in config.getoption("ab_backend_option"))
    if config.getoption("ab_base") or config.getoption("ab_backend") or ab_options:
        if config.getoption("update_baselines"):
            raise HarnessError("A/B mode compares two variants in this job and writes no baselines; drop one option")
        base = config.getoption("ab_base")
        ab = ABConfig(
            base_dir=Path(base).resolve() if base else None,
            root=config.rootpath,
            backend=config.getoption("ab_backend"),
            backend_options=ab_options,
        )
    return {
        "confirm": config.getoption("confirm"),
        "fail_on_ambiguous": config.getoption("fail_on_ambiguous"),
        "alpha": alpha if alpha is not None else ALPHA,
        "slowdown": factor if factor is not None else 1.0,
        "slowdown_cases": tuple(config.getoption("slowdown_cases")),
        "ab": ab,
    }


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before xdist's own answer, the CPU count
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` starts one pytest-xdist worker per GPU (harness.pytest_plugin.workers)."""
    return workers.auto_num_workers(config)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs an NVIDIA GPU; skipped with a reason elsewhere")
    config.stash[_STATE] = {"error": None, "cases": None, "session": None}
    if config.getoption("interleave", None) is True and getattr(config.option, "numprocesses", None):
        raise pytest.UsageError("--interleave measures every case in one process; run it without -n (pytest-xdist)")
    # Shard filter and session-end bookkeeping (run record; xdist workers' results merged by the controller).
    config.stash[_STATE]["recorder"] = workers.configure(config, shard.configure(config))


def _rooted(config: pytest.Config, value: str | None, default: str) -> Path:
    path = Path(value or default)
    return path if path.is_absolute() or value else config.rootpath / path


def _parse_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise HarnessError(f"--backend-option '{text}': expected KEY=VALUE, e.g. intra_op_threads=2")
    return key.strip(), yaml.safe_load(value)


def _suite_files(config: pytest.Config) -> list[Path]:
    patterns = config.getoption("suite") or [str(config.rootpath / p) for p in config.getini("harness_suites")]
    if not patterns:  # a bench module with nothing selected runs nothing; suite files may be collected directly
        return []
    files: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise HarnessError(f"--suite {pattern}: no suite file matches; check the path")
        files.extend(Path(m) for m in matches)
    return files


def _cases(config: pytest.Config) -> list[Case]:
    state = config.stash[_STATE]
    if state["cases"] is None:
        cases: list[Case] = []
        seen: dict[str, str] = {}
        for path in _suite_files(config):
            suite = load_suite(path)
            for case in suite.cases():
                if case.id in seen:
                    raise HarnessError(
                        f"{path}: case '{case.id}' also comes from {seen[case.id]}; "
                        "rename the model in one of the suites"
                    )
                seen[case.id] = str(path)
                cases.append(case)
        state["cases"] = cases
    return state["cases"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "harness_case" not in metafunc.fixturenames:
        return
    state = metafunc.config.stash[_STATE]
    try:
        cases = _cases(metafunc.config)
    except HarnessError as exc:
        # Reported by pytest_collection_modifyitems as a one-line usage error, not a collection traceback.
        state["error"] = str(exc)
        cases = []
    metafunc.parametrize("harness_case", cases, ids=[c.id for c in cases])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[_STATE]
    if state["error"]:
        raise pytest.UsageError(state["error"])
    from harness.pytest_plugin.collect import case_of

    cases = [case for item in items if (case := case_of(item)) is not None]
    if not cases:
        return
    session = _harness_session(config)
    # Everything that would stop the run later is checked before anything is measured: an unknown backend or a bad
    # option, an output folder that cannot be written, a baseline file that cannot be used.
    try:
        suites = list({c.suite.name: c.suite for c in cases}.values())
        for suite in suites:
            session.backend_for(suite)
        check_output_folders(session)
        config.stash[_STATE]["report_claim"] = claim_report_dir(session)
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


def claim_report_dir(session: HarnessSession) -> Any:
    """Hold ``results.json`` of this run for the whole session, so a second run started into the same --report-dir
    (two shards or jobs on one runner) is refused at once instead of replacing this run's file with its own. The
    lock is the kernel's (harness.core.fsio.locked): a killed run never leaves it behind."""
    from filelock import Timeout

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
    log = log_internal_error(exc, _rooted(config, config.getoption("report_dir", None), "reports"))
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
    if explicit is None and (getattr(config.option, "numprocesses", None) or hasattr(config, "workerinput")):
        return
    from harness.pytest_plugin.collect import case_of

    cases = [case for item in session.items if (case := case_of(item)) is not None]
    if not cases:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def progress(line: str) -> None:
        if reporter is not None:
            reporter.write_line(f"harness interleave: {line}")

    try:
        _harness_session(config).measure_interleaved(cases, progress, explicit=explicit is True)
    except Exception as exc:  # measure_interleaved leaves each case's own failure to its item; this is a defect
        _internal_exit(config, exc)


def _harness_session(config: pytest.Config) -> HarnessSession:
    state = config.stash[_STATE]
    if state["session"] is None:
        try:
            options = dict(_parse_option(o) for o in config.getoption("backend_option"))
            gate = _gate_config(config)
        except HarnessError as exc:
            raise pytest.UsageError(str(exc)) from None
        overrides = _measure_overrides(config)
        state["session"] = HarnessSession(
            RunConfig(
                backend=config.getoption("backend"),
                backend_options=options,
                baseline_dir=_rooted(config, config.getoption("baseline_dir"), "baselines"),
                report_dir=_rooted(config, config.getoption("report_dir"), "reports"),
                cache_dir=_rooted(config, config.getoption("harness_cache"), ".harness-cache"),
                update_baselines=config.getoption("update_baselines"),
                build_only=config.getoption("build_only"),
                strict_baselines=config.getoption("strict_baselines"),
                measure_overrides=overrides,
                **gate,
            ),
            progress=Progress.for_pytest(config),
        )
        if state.get("recorder") is not None:
            state["recorder"].adapt(state["session"])  # an xdist worker writes its own results file
    session: HarnessSession = state["session"]
    return session


def _measure_overrides(config: pytest.Config) -> dict[str, float]:
    """The measure settings given on the command line, held to the suite file's rules (finite, positive)."""
    overrides = {}
    for name in ("warmup_ms", "min_duration_ms", "min_iterations", "trials"):
        value = config.getoption(name)
        if value is None:
            continue
        problem = measure_value_problem(name, value)
        if problem:
            raise pytest.UsageError(f"--{name.replace('_', '-')} {value}: {problem}")
        overrides[name] = value
    return overrides


@pytest.fixture(scope="session")
def harness_session(pytestconfig: pytest.Config) -> HarnessSession:
    return _harness_session(pytestconfig)


@pytest.fixture
def harness_check(harness_session: HarnessSession) -> Any:
    """Run a case and turn its result into the test outcome (:func:`check_case`)."""
    return functools.partial(check_case, harness_session)


def check_case(harness_session: HarnessSession, case: Case) -> None:
    """Run a case and turn its result into the test outcome: fail on regression or error, skip with the reason."""
    try:
        result = harness_session.run_case(case)
    except OutputError as exc:
        # The disk or the folder refused a write: every later case would fail the same way. What was finished
        # is on disk (results.json is rewritten atomically after each case); stop with the one line.
        pytest.exit(f"harness: {exc}", returncode=pytest.ExitCode.INTERRUPTED)
    for warning in result.warnings:
        print(f"warning: {case.id}: {warning}")
    if result.status == "skipped":
        pytest.skip(result.message)
    if result.status in ("failed", "error"):
        pytest.fail(result.message, pytrace=False)
    if result.message:
        print(result.message)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the reports next to results.json; on GitHub Actions append summary.md to $GITHUB_STEP_SUMMARY."""
    config = session.config
    state: dict[str, Any] = config.stash.get(_STATE, {})
    hsession = state.get("session")
    if hsession is None or hsession.results is None or not hsession.results.cases:
        return
    if hasattr(config, "workerinput") or config.getoption("no_reports"):
        return  # an xdist worker: the controller reports on the merged results
    from harness.report import append_step_summary, write_reports

    try:
        files = write_reports(hsession.results, hsession.results_path.parent, source=str(hsession.results_path))
        append_step_summary(files.summary)
    except OSError as exc:  # the benchmark outcome stands; the summary says what was not written
        state["report_error"] = str(output_error(exc, exc.filename or hsession.results_path.parent, "--report-dir"))
    except HarnessError as exc:
        state["report_error"] = str(exc)
    except Exception as exc:  # a defect in the reports must not hide the benchmark outcome either
        state["report_error"] = internal_error_line(exc, log_internal_error(exc, hsession.results_path.parent))
    else:
        state["report"] = files


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    session = config.stash[_STATE]["session"] if _STATE in config.stash else None
    if session is None or session.results is None or not session.results.cases:
        return
    terminalreporter.section("benchmark summary")
    try:
        from harness.report.terminal import summary_lines

        lines = summary_lines(session.results)
    except Exception as exc:  # a defect of the table must not hide where the results and reports are
        lines = [f"harness: {internal_error_line(exc, log_internal_error(exc, session.config.report_dir))}"]
    for line in lines:
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"results: {session.results_path}")
    state = config.stash[_STATE]
    if state.get("report") is not None:
        terminalreporter.write_line(f"report: {state['report'].html} (summary.md, benchmark.json, plots/ beside it)")
    if state.get("report_error"):
        terminalreporter.write_line(f"report: not written: {state['report_error']}", red=True)
    if state.get("write_error"):
        terminalreporter.write_line(f"results: not all written: {state['write_error']}", red=True)
    if session.config.update_baselines:
        terminalreporter.write_line(
            f"baselines updated under {session.config.baseline_dir / session.results.environment['key']}"
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    """Let go of the report folder (claim_report_dir): a later session in this process may write there again."""
    claim = config.stash.get(_STATE, {}).get("report_claim") if _STATE in config.stash else None
    if claim is not None:
        claim.release()
