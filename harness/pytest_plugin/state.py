"""The plugin's state of one pytest run (:class:`PluginState`, kept in the config's stash) and the harness session
every hook, item and fixture of the run shares, built from the options on first use (:func:`session_of`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

from harness.core.errors import HarnessError
from harness.core.progress import Progress
from harness.models.sources import check_sources
from harness.pytest_plugin.options import run_config, suite_files
from harness.run.session import HarnessSession
from harness.run.start import open_session
from harness.suite.load import load_suite
from harness.suite.schema import Case

if TYPE_CHECKING:
    from filelock import BaseFileLock

    from harness.report import ReportFiles


class SessionAdapter(Protocol):
    """Fits the session to the process it runs in, once, when it is built (an xdist worker writes its own
    results file: harness.pytest_plugin.workers.RunRecorder)."""

    def adapt(self, session: HarnessSession) -> None: ...


@dataclass
class PluginState:
    """What the plugin's hooks learn during one pytest run and hand on to later hooks."""

    cases: list[Case] | None = None  # the --suite / harness_suites cases, once a bench module asked for them
    error: str | None = None  # why those cases could not be loaded: a usage error once collection ends
    suite_errors: list[str] = field(default_factory=list)  # suite files collected directly that failed to load
    nothing_collected: bool = False  # collection ended with no item at all (the terminal then says what to do)
    session: HarnessSession | None = None  # built on first use (session_of)
    recorder: SessionAdapter | None = None  # fits the session to this process when it is built
    report_claim: BaseFileLock | None = None  # held on results.json for the whole run (claim_report_dir)
    report: ReportFiles | None = None  # the reports written at the session's end
    report_error: str | None = None  # why the reports were not written (one line for the terminal summary)
    metrics_file: Path | None = None  # the --metrics-file written at the session's end
    metrics_error: str | None = None  # why it was not written
    write_error: str | None = None  # why results.json or the baselines were not all written


_KEY = pytest.StashKey[PluginState]()


def state_of(config: pytest.Config) -> PluginState:
    """This run's state; a fresh one if no hook has stored it yet (e.g. when pytest_configure did not run)."""
    return config.stash.setdefault(_KEY, PluginState())


def cases_of(config: pytest.Config) -> list[Case]:
    """The cases of the ``--suite`` files (else the ini option ``harness_suites``), loaded once; one case id from
    two suite files is a HarnessError."""
    state = state_of(config)
    if state.cases is None:
        cases: list[Case] = []
        seen: dict[str, str] = {}
        for path in suite_files(config):
            suite = load_suite(path)
            check_sources(suite)
            for case in suite.cases():
                if case.id in seen:
                    raise HarnessError(
                        f"{path}: case '{case.id}' also comes from {seen[case.id]}; "
                        "rename the model in one of the suites"
                    )
                seen[case.id] = str(path)
                cases.append(case)
        state.cases = cases
    return state.cases


def session_of(config: pytest.Config) -> HarnessSession:
    """The run's harness session, built from the options on first use; a bad option is a usage error."""
    state = state_of(config)
    if state.session is None:
        session = open_session(run_config(config), progress=Progress.for_pytest(config))
        if state.recorder is not None:
            state.recorder.adapt(session)
        state.session = session
    return state.session
