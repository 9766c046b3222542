"""The plugin's typed state (harness.pytest_plugin.state): one PluginState per pytest run, filled by the hooks as the
run goes and read back by later hooks, the session-end bookkeeping and the suite items."""

from __future__ import annotations

from pathlib import Path

import pytest
from suite_runner import BENCH_MODULE, run_suite

from harness.pytest_plugin.state import PluginState, state_of
from harness.pytest_plugin.workers import RunRecorder

pytest_plugins = ["pytester"]

SUITE = """suite: demo
models:
  - name: net
    onnx_zoo: light_squeezenet
precisions: [fp32]
batch_sizes: [1]
measure: {warmup_ms: 5, min_duration_ms: 20, min_iterations: 3, trials: 1}
"""
# Prints, at the very end of a run, what the state held (a conftest of the pytester project).
PRINT_STATE = """
import pytest
from harness.pytest_plugin.state import state_of

@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config):
    s = state_of(config)
    terminalreporter.write_line(
        f"STATE cases={[c.id for c in s.cases] if s.cases is not None else None} "
        f"session={type(s.session).__name__} claim={s.report_claim is not None} report={s.report is not None} "
        f"error={s.error} suite_errors={len(s.suite_errors)} write_error={s.write_error}"
    )
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    pytester.makepyfile(test_bench=BENCH_MODULE)
    pytester.makeconftest(PRINT_STATE)
    (pytester.path / "suite.yaml").write_text(SUITE)
    return pytester.path


def test_a_fresh_state_holds_nothing_yet():
    state = PluginState()
    assert state.cases is None and state.session is None and state.recorder is None
    assert state.suite_errors == [] and not state.nothing_collected
    assert state.report is None and state.report_error is None and state.write_error is None


def test_a_configured_run_has_one_state_with_its_recorder(pytester):
    config = pytester.parseconfigure()
    state = state_of(config)
    assert state_of(config) is state  # one object per run, not a copy
    assert isinstance(state.recorder, RunRecorder)  # set by pytest_configure, adapts the session when it is built
    assert state.session is None and state.cases is None  # built only when a case asks for them


def test_the_hooks_fill_the_state_as_the_run_goes(pytester, project):
    outcome = run_suite(pytester)
    outcome.assert_outcomes(passed=1)
    line = next(line for line in outcome.outlines if line.startswith("STATE "))
    assert line == (
        "STATE cases=['net-fp32-b1'] session=HarnessSession claim=True report=True error=None suite_errors=0 "
        "write_error=None"
    )


def test_a_suite_that_cannot_load_is_kept_in_the_state_and_stops_the_run(pytester, project):
    (project / "suite.yaml").write_text("suite: demo\nmodels: []\n")
    outcome = run_suite(pytester)
    assert outcome.ret == pytest.ExitCode.USAGE_ERROR
    assert "suite.yaml" in outcome.stderr.str()
    line = next(line for line in outcome.outlines if line.startswith("STATE "))
    assert "cases=None session=NoneType" in line and "error=" in line and "error=None " not in line
