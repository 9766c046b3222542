"""The run's profile pass and attribution with a scripted backend whose runners return hand-made layer profiles:
when the pass runs, what results.json and the baseline keep, the regression message's ``where:``, A/B, failures."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import pytest

from harness.attribution.record import LayerProfile, LayerTime
from harness.backends import base
from harness.backends.base import BackendBase, BackendContext, BuildInfo, RunnerBase
from harness.core.errors import HarnessError
from harness.core.results import CaseResult, RunResults
from harness.judge.baselines import SCHEMA, BaselineStore
from harness.run import session as session_module
from harness.run.ab import ABSession
from harness.run.config import ABConfig, RunConfig
from harness.run.session import HarnessSession, profile_iterations
from harness.suite.load import load_suite
from harness.suite.schema import MeasureSpec

FAST_MS = 2.0  # per inference, the model as recorded
SLOW_MS = 5.0  # per inference, the model whose Conv_2 got slower


def layers(conv_2_ms: float, spread_ms: float = 0.005) -> LayerProfile:
    """Three layers; only ``Conv_2`` changes between the two versions of the model; ``spread_ms`` 1.0: a pass that
    a neighbour preempted."""
    times = [("Conv_0", "Conv", 1.0), ("Relu_1", "Relu", 0.2), ("Conv_2", "Conv", conv_2_ms)]
    return LayerProfile.of(
        "onnxruntime",
        [LayerTime(name, (name,), kind, ms, spread_ms=spread_ms) for name, kind, ms in times],
        iterations=20,
        end_to_end_ms=1.2 + conv_2_ms,
    )


class ProfiledRunner(RunnerBase):
    """Busy-waits ``delay_ms`` per inference (CPU time, as slower code takes) and logs what is asked of it."""

    def __init__(self, backend: ScriptedBackend, delay_ms: float) -> None:
        self.backend, self.delay_ms, self.index = backend, delay_ms, len(backend.runners)
        backend.runners.append(self)

    def step(self) -> None:
        self.backend.log.append(("step", self.index))
        until = time.perf_counter() + self.delay_ms / 1e3
        while time.perf_counter() < until:
            pass

    def outputs(self) -> dict[str, Any]:
        return {}

    def profile(self, iterations: int) -> LayerProfile | None:
        self.backend.log.append(("profile", self.index))
        self.backend.profiled.append(iterations)
        behaviour = self.backend.profiler
        if isinstance(behaviour, BaseException):
            raise behaviour
        if behaviour == "none":
            return None
        disturbed = len(self.backend.profiled) <= self.backend.disturbed_passes
        return layers(0.8 if self.delay_ms == FAST_MS else 3.8, spread_ms=1.0 if disturbed else 0.005)


class ScriptedBackend(BackendBase):
    name = "scripted"
    # Class-level so every backend the session creates (A/B makes a second) shares them; reset by the fixture.
    delay_ms = FAST_MS
    profiler: str | BaseException = "layers"  # "layers", "none" (no profiler) or an exception to raise
    disturbed_passes = 0  # the first profile passes come back with layers spread wide, as preempted ones do
    # the speed probe around a profile pass, ms: steady unless a test says otherwise, since the scripted profiles
    # are fixed numbers and a real probe on a loaded CI host would "correct" them by its own noise
    probe_reading = 1.0
    log: ClassVar[list[tuple[str, int]]] = []
    profiled: ClassVar[list[int]] = []
    runners: ClassVar[list[ProfiledRunner]] = []

    def __init__(self, context: BackendContext, delay_ms: float | None = None) -> None:
        super().__init__(context)
        self.own_delay_ms = delay_ms

    def version(self) -> str:
        return "1.0"

    def settings(self) -> dict[str, Any]:
        return {} if self.own_delay_ms is None else {"delay_ms": self.own_delay_ms}

    def build(self, model: Any, case: Any) -> Any:
        engine = type("Engine", (), {})()
        engine.build = BuildInfo(build_time_ms=1.0, engine_bytes=10)
        delay = self.own_delay_ms if self.own_delay_ms is not None else type(self).delay_ms
        engine.runner = lambda feeds: ProfiledRunner(self, delay)
        return engine


def create(options: dict[str, Any], context: BackendContext) -> ScriptedBackend:
    return ScriptedBackend(context, options.get("delay_ms"))


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> type[ScriptedBackend]:
    monkeypatch.setitem(base.REGISTRY, "scripted", f"{__name__}:create")
    fresh = {"delay_ms": FAST_MS, "profiler": "layers", "disturbed_passes": 0, "log": [], "profiled": [], "runners": []}
    for name, value in fresh.items():
        monkeypatch.setattr(ScriptedBackend, name, value)
    monkeypatch.setattr(ScriptedBackend, "probe_reading", 1.0)
    monkeypatch.setattr(session_module, "probe_ms", lambda: ScriptedBackend.probe_reading)
    return ScriptedBackend


@pytest.fixture
def case(tmp_path: Path) -> Any:
    suite_file = tmp_path / "s.yaml"
    suite_file.write_text(
        "suite: s\nmodels:\n  - name: a\n    onnx_zoo: light_squeezenet\n"
        "measure: {warmup_ms: 0, min_duration_ms: 25, min_iterations: 5, trials: 5}\n"
        "tolerance: 10%\n"
    )
    (only,) = load_suite(suite_file).cases()
    return only


def config(tmp_path: Path, **overrides: Any) -> RunConfig:
    folders = {"baseline_dir": tmp_path / "bl", "report_dir": tmp_path / "r", "cache_dir": tmp_path / "c"}
    return RunConfig(backend="scripted", **{**folders, **overrides})


def recorded(tmp_path: Path, case: Any) -> CaseResult:
    """Run ``case`` with --update-baselines: the baseline keeps its profile."""
    return HarnessSession(config(tmp_path, update_baselines=True)).run_case(case)


def read_profile(profile: dict[str, Any] | None) -> LayerProfile:
    """A stored profile as the fake runner gave it: the speed-probe reading the session adds is checked apart."""
    assert profile is not None
    return replace(LayerProfile.from_dict(profile), probe_ms=None)


def assert_names_conv_2(first_line: str) -> None:
    """The message's first line ends with where the time went: Conv_2, about +3 ms, nearly all of the change."""
    where = re.search(r"; where: Conv_2 \+(\d\.\d\d) ms \((\d+)% of the change\)$", first_line)
    assert where is not None, first_line
    assert 2.2 < float(where.group(1)) < 3.8 and int(where.group(2)) >= 90


def results_file(tmp_path: Path) -> dict[str, Any]:
    (case,) = json.loads((tmp_path / "r" / "results.json").read_text())["cases"]
    return dict(case)


def test_the_profile_pass_runs_last_on_a_runner_of_its_own_and_the_baseline_keeps_it(tmp_path, scripted, case):
    result = recorded(tmp_path, case)
    assert result.status == "passed" and read_profile(result.profile) == layers(0.8)
    assert result.profile is not None and result.profile["probe_ms"] > 0  # the runner's speed around the pass
    (profile_event,) = [event for event in scripted.log if event[0] == "profile"]
    assert scripted.log[-1] == profile_event  # after every gated trial
    assert ("step", profile_event[1]) not in scripted.log  # a fresh runner, never one that was timed
    assert results_file(tmp_path)["profile"] == result.profile

    stored = json.loads(next((tmp_path / "bl").glob("*/s.json")).read_text())
    assert stored["schema"] == SCHEMA == "harness.baseline/2"  # an optional key of schema 2, not a schema 3
    assert read_profile(stored["cases"][case.id]["profile"]) == layers(0.8)


def test_a_regression_names_where_the_time_went_after_its_confirmation(tmp_path, scripted, case):
    recorded(tmp_path, case)
    scripted.log.clear()
    scripted.delay_ms = SLOW_MS
    result = HarnessSession(config(tmp_path)).run_case(case)

    assert result.verdict == "regressed" and result.status == "failed"
    assert "confirmation" in result.measure
    assert scripted.log[-1][0] == "profile"  # after the confirmation's trials too
    first_line = result.message.splitlines()[0]
    assert_names_conv_2(first_line)
    attribution = results_file(tmp_path)["attribution"]
    top = attribution["groups"][0]
    assert top["label"] == "Conv_2" and top["above_noise"] and top["change"] == "slower"
    assert not any(g["above_noise"] for g in attribution["groups"][1:])  # Conv_0 and Relu_1 did not move
    assert attribution["current_ms"] - attribution["baseline_ms"] == pytest.approx(3.0)
    assert attribution["runner_change"] == 0.0  # the probe read the same around both passes


def test_a_runner_slower_around_the_current_pass_is_taken_out_of_the_layers(tmp_path, scripted, case):
    recorded(tmp_path, case)  # the probe reads 1.0 ms around the baseline's pass
    scripted.delay_ms = SLOW_MS
    scripted.probe_reading = 1.25  # the whole host 25% slower around this pass: every layer moved by it
    result = HarnessSession(config(tmp_path)).run_case(case)

    assert result.profile is not None and result.profile["probe_ms"] == 1.25  # stored as read
    attribution = results_file(tmp_path)["attribution"]
    assert attribution["runner_change"] == pytest.approx(0.25)
    # Conv_2: 3.8 ms read at 1.25x the baseline's runner time is 3.04 ms at its speed, +2.24 ms on 0.8 ms; the
    # layers that did not change read 20% faster at the baseline's speed and stay under the noise
    top = attribution["groups"][0]
    assert top["label"] == "Conv_2" and top["above_noise"]
    assert top["current_ms"] - top["baseline_ms"] == pytest.approx(3.8 / 1.25 - 0.8, abs=1e-3)
    assert "where: Conv_2 +2.24 ms" in result.message.splitlines()[0]
    assert attribution["current_ms"] == pytest.approx((1.0 + 0.2 + 3.8) / 1.25, abs=1e-3)


def test_an_unchanged_case_keeps_its_attribution_but_its_message_names_no_group(tmp_path, scripted, case):
    recorded(tmp_path, case)
    result = HarnessSession(config(tmp_path)).run_case(case)
    # whatever the gate made of the runner's drift, no layer moved, so no layer is named
    assert "where:" not in result.message
    assert result.attribution is not None
    assert not any(g["above_noise"] for g in result.attribution["groups"])


def test_without_a_profile_on_either_side_there_is_no_attribution_and_no_word(tmp_path, scripted, case):
    scripted.profiler = "none"  # a backend without a profiler
    recorded(tmp_path, case)
    stored = json.loads(next((tmp_path / "bl").glob("*/s.json")).read_text())
    assert "profile" not in stored["cases"][case.id]  # a baseline without a profile is as usable as ever
    scripted.profiler = "layers"
    scripted.delay_ms = SLOW_MS
    result = HarnessSession(config(tmp_path)).run_case(case)
    assert result.profile is not None and result.attribution is None and "where:" not in result.message
    assert not any("profile" in w or "attribution" in w for w in result.warnings)


@pytest.mark.parametrize(("disturbed", "passes"), [(1, 2), (5, 3)])
def test_a_disturbed_profile_pass_is_taken_again_and_the_least_disturbed_kept(
    tmp_path, scripted, case, disturbed, passes
):
    scripted.disturbed_passes = disturbed
    result = recorded(tmp_path, case)
    assert len(scripted.profiled) == passes  # again until one is clean, three passes at most
    profile = read_profile(result.profile)
    clean = disturbed < passes
    assert profile.layers[0].spread_ms == (0.005 if clean else 1.0)
    assert profile.notes[-1].startswith(f"least disturbed of {passes} passes (end-to-end ")


def test_no_profile_option_takes_none(tmp_path, scripted, case):
    result = HarnessSession(config(tmp_path, profile=False)).run_case(case)
    assert result.profile is None and not any(event[0] == "profile" for event in scripted.log)


@pytest.mark.parametrize(
    ("failure", "warning"),
    [
        (HarnessError("the profiler wrote no trace file"), "no layer profile: the profiler wrote no trace file"),
        (RuntimeError("profiler exploded"), "no layer profile: RuntimeError: profiler exploded (traceback in "),
    ],
)
def test_a_failing_profiler_is_a_warning_on_the_case_never_its_error(tmp_path, scripted, case, failure, warning):
    scripted.profiler = failure
    result = recorded(tmp_path, case)
    assert result.status == "passed" and result.verdict == "new" and result.profile is None
    assert any(w.startswith(warning) for w in result.warnings)


def test_a_diff_that_fails_is_a_warning_and_the_verdict_stands(tmp_path, scripted, case, monkeypatch):
    recorded(tmp_path, case)
    scripted.delay_ms = SLOW_MS

    def broken(baseline: LayerProfile, current: LayerProfile) -> Any:
        raise ValueError("no groups")

    monkeypatch.setattr(session_module, "diff_profiles", broken)
    result = HarnessSession(config(tmp_path)).run_case(case)
    assert result.verdict == "regressed" and result.attribution is None and "where:" not in result.message
    assert any(w.startswith("no attribution: ValueError: no groups") for w in result.warnings)


def test_ab_mode_diffs_the_reference_variants_profile_against_the_candidates(tmp_path, scripted, case):
    ab = ABConfig(backend_options={"delay_ms": SLOW_MS})  # the candidate: the same backend, a slower Conv_2
    session = ABSession(config(tmp_path, ab=ab))
    result = session.run_case(case)
    assert result.verdict == "regressed"
    assert result.baseline is not None and read_profile(result.baseline["profile"]) == layers(0.8)
    assert read_profile(result.profile) == layers(3.8)
    assert_names_conv_2(result.message.splitlines()[0])
    assert result.attribution is not None and result.attribution["groups"][0]["label"] == "Conv_2"
    profiled = [index for kind, index in scripted.log if kind == "profile"]
    assert len(profiled) == 2 and scripted.log[-2:] == [("profile", i) for i in profiled]


def test_profile_iterations_fill_one_trials_budget_within_bounds():
    spec = MeasureSpec(min_duration_ms=1000, trials=5)  # one trial: 200 ms
    assert profile_iterations(spec, 2.0) == 100
    assert profile_iterations(spec, 50.0) == 20  # never fewer than a median needs
    assert profile_iterations(spec, 0.01) == 200  # never a trace of thousands of runs
    assert profile_iterations(spec, None) == 20 and profile_iterations(spec, float("nan")) == 20
    assert profile_iterations(spec, 2.0, asked=7) == 7  # --profile-iterations wins


def test_a_baseline_whose_profile_is_unreadable_is_refused_by_name(tmp_path, scripted, case):
    recorded(tmp_path, case)
    path = next((tmp_path / "bl").glob("*/s.json"))
    stored = json.loads(path.read_text())
    stored["cases"][case.id]["profile"] = {"source": "onnxruntime", "layers": [{"name": "Conv_0"}]}
    path.write_text(json.dumps(stored))
    with pytest.raises(HarnessError, match=r"case 'a-fp32-b1': profile layer 0 'Conv_0': 'ms' should be a number"):
        BaselineStore(tmp_path / "bl", path.parent.name).load("s")


def test_results_json_checks_the_profile_and_attribution_fields():
    record = CaseResult(id="x", params={}, profile=layers(0.8).to_dict(), attribution={"groups": []})
    back = RunResults.from_dict(RunResults(environment={}, cases=[record]).to_dict())
    assert back.cases[0].profile == record.profile and back.cases[0].attribution == record.attribution
    assert CaseResult.from_dict({"id": "x", "profile": None, "attribution": None}).profile is None
    with pytest.raises(HarnessError, match="case 'x': field 'profile' should be an object, got list"):
        CaseResult.from_dict({"id": "x", "profile": []})
