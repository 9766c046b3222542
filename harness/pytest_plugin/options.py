"""The plugin's command-line options and what they mean for a run: the option definitions, and the
:class:`~harness.run.session.RunConfig` built from them (a bad value or combination is one usage error).

``--backend-option KEY=VALUE`` is parsed by :func:`parse_option`, which ``harness calibrate`` shares.
"""

from __future__ import annotations

import argparse
import glob
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.core.errors import HarnessError
from harness.core.results import RunResults
from harness.history.store import ENV_VAR, HistoryStore, record_run
from harness.judge.gate import ALPHA
from harness.run.config import ABConfig, RunConfig
from harness.run.fresh import CONFIRM_IN
from harness.suite.schema import measure_value_problem

# Measure settings the command line may override, each held to the suite file's rules (measure_value_problem).
MEASURE_OPTIONS = ("warmup_ms", "min_duration_ms", "min_iterations", "trials")


def add_run_options(group: pytest.OptionGroup) -> None:
    """What to run, on which backend, and where its files go."""
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
        "--history",
        default=None,
        metavar="URL",
        help="append the run's cases to a history store: sqlite:///PATH.db, postgresql://USER@HOST/DB or a file path "
        f"(default: ${ENV_VAR} when set; read it with harness history)",
    )
    group.addoption(
        "--metrics-file",
        default=None,
        metavar="PATH",
        help="also write the run as OpenMetrics text to PATH (atomically), e.g. into node_exporter's textfile "
        "collector folder as harness.prom",
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
    group.addoption(
        "--no-profile",
        action="store_false",
        dest="harness_profile",
        default=True,
        help="take no per-layer profile of the cases (default: one pass after each case's gated trials, where the "
        "backend has a profiler; it says where a regression went)",
    )
    group.addoption(
        "--profile-iterations",
        type=int,
        default=None,
        metavar="N",
        help="inferences the per-layer profile pass runs (default: one trial's budget, 20 to 200)",
    )


def add_gate_options(group: pytest.OptionGroup) -> None:
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
        "--confirm-in",
        choices=CONFIRM_IN,
        default="auto",
        help="where that second measurement is taken: auto (default; a new process on GPU backends, whose processes "
        "each keep a speed of their own, this process otherwise), same-process or fresh-process",
    )
    group.addoption(
        "--baseline-processes",
        type=int,
        default=None,
        metavar="N",
        help="with --update-baselines, pool each case's trials from N processes, this one and N-1 new ones "
        "(default: 3 on GPU backends, whose processes each keep a speed of their own, 1 otherwise)",
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


def add_ini_options(parser: pytest.Parser) -> None:
    parser.addini(
        "harness_suites",
        type="linelist",
        default=[],
        help="suite files (globs) run when no --suite is given, relative to the rootdir",
    )


def parse_option(text: str) -> tuple[str, Any]:
    """One ``KEY=VALUE`` backend option; the value is read as YAML (``2`` an int, ``true`` a bool, ``a`` text)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise HarnessError(f"--backend-option '{text}': expected KEY=VALUE, e.g. intra_op_threads=2")
    return key.strip(), yaml.safe_load(value)


def rooted(config: pytest.Config, value: str | None, default: str) -> Path:
    """A folder option's path: as given, or ``default`` below the rootdir when the option is not given."""
    path = Path(value or default)
    return path if path.is_absolute() or value else config.rootpath / path


def report_dir(config: pytest.Config) -> Path:
    """The folder of ``--report-dir`` (default: reports/ below the rootdir)."""
    return rooted(config, config.getoption("report_dir", None), "reports")


def history_url(config: pytest.Config) -> str | None:
    """The store of ``--history``, else ``$HARNESS_HISTORY``; None when the run keeps no history."""
    return config.getoption("history", None) or os.environ.get(ENV_VAR) or None


def check_history(config: pytest.Config) -> None:
    """Open (and migrate) the history store now: a bad URL or a server that does not answer stops the run before
    anything is measured, as one line."""
    url = history_url(config)
    if url:
        HistoryStore(url).close()


def append_history(config: pytest.Config, results: RunResults) -> None:
    """Append the run to the history store, saying so in one line of the terminal. A store that fails now costs the
    history this run, never the run's outcome: the results file keeps it for ``harness history import``."""
    url = history_url(config)
    if not url:
        return
    try:
        with HistoryStore(url) as store:
            line, failed = record_run(store, results, "pytest"), False
    except HarnessError as exc:
        line, failed = f"history: not appended: {exc} (harness history import adds the results file later)", True
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line, red=failed)


def metrics_file(config: pytest.Config) -> Path | None:
    """The file of ``--metrics-file`` (as given: relative to the working directory), or None."""
    value = config.getoption("metrics_file", None)
    return Path(value) if value else None


def suite_files(config: pytest.Config) -> list[Path]:
    """The suite files of ``--suite`` (globs allowed), else of the ini option ``harness_suites``."""
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


def run_config(config: pytest.Config) -> RunConfig:
    """The session's settings from the command line; a bad option or combination is a usage error."""
    try:
        options = dict(parse_option(o) for o in config.getoption("backend_option"))
        gate = _gate_settings(config)
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    return RunConfig(
        backend=config.getoption("backend"),
        backend_options=options,
        baseline_dir=rooted(config, config.getoption("baseline_dir"), "baselines"),
        report_dir=report_dir(config),
        cache_dir=rooted(config, config.getoption("harness_cache"), ".harness-cache"),
        update_baselines=config.getoption("update_baselines"),
        build_only=config.getoption("build_only"),
        strict_baselines=config.getoption("strict_baselines"),
        measure_overrides=measure_overrides(config),
        **gate,
        **profile_settings(config),
    )


def profile_settings(config: pytest.Config) -> dict[str, Any]:
    """RunConfig fields of the per-layer profile options; a count below 1 is a usage error."""
    iterations = config.getoption("profile_iterations")
    if iterations is not None and iterations < 1:
        raise pytest.UsageError(
            f"--profile-iterations {iterations}: profile at least 1 inference (20 or more give stable layer medians)"
        )
    return {"profile": config.getoption("harness_profile"), "profile_iterations": iterations}


def _gate_settings(config: pytest.Config) -> dict[str, Any]:
    """RunConfig fields of the gate options; a bad combination is a usage error."""
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
    processes = config.getoption("baseline_processes")
    if processes is not None and processes < 1:
        raise HarnessError(f"--baseline-processes {processes}: give 1 or more (3 on a GPU leaves few false alarms)")
    alpha = config.getoption("gate_alpha")
    if alpha is not None and not 0.0 < alpha < 0.5:
        raise HarnessError(f"--gate-alpha {alpha}: give a level between 0 and 0.5, e.g. 0.05")
    ab = None
    ab_options = dict(parse_option(o) for o in config.getoption("ab_backend_option"))
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
        "confirm_in": config.getoption("confirm_in"),
        "baseline_processes": processes,
        "fail_on_ambiguous": config.getoption("fail_on_ambiguous"),
        "alpha": alpha if alpha is not None else ALPHA,
        "slowdown": factor if factor is not None else 1.0,
        "slowdown_cases": tuple(config.getoption("slowdown_cases")),
        "ab": ab,
    }


def measure_overrides(config: pytest.Config) -> dict[str, float]:
    """The measure settings given on the command line, held to the suite file's rules (finite, positive)."""
    overrides = {}
    for name in MEASURE_OPTIONS:
        value = config.getoption(name)
        if value is None:
            continue
        problem = measure_value_problem(name, value)
        if problem:
            raise pytest.UsageError(f"--{name.replace('_', '-')} {value}: {problem}")
        overrides[name] = value
    return overrides
