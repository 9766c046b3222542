"""The gate end to end through pytest: A/A reruns pass, a simulated slowdown fails exactly its cases, ambiguous
verdicts pass unless asked otherwise, and bad gate options are usage errors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from statistics import median

import pytest
from suite_runner import cases, run_suite, two_model_project

from harness.run.session import HarnessSession

pytest_plugins = ["pytester"]

FAST = ["--warmup-ms", "40", "--min-duration-ms", "300", "--min-iterations", "10", "--trials", "5"]


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    # 15 %: whole runs of a shared 2-core VM drift by up to ~13 % (docs/evidence/gate-calibration-dev-vm.md); the
    # simulated slowdown below is well beyond it, so the test checks the gate's logic, not the machine's luck.
    return two_model_project(pytester, "15%")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return run_suite(pytester, *FAST, *args)


def baseline_file(root: Path) -> Path:
    return next((root / "baselines").glob("*/demo.json"))


def test_a_a_rerun_passes_and_a_simulated_slowdown_fails_only_the_selected_case(pytester):
    # The check as written: +20 % on one case against a 10 % tolerance. The four cases are interleaved and
    # scaled by the speed probe, so a drift of the runner falls on all of them and is taken out.
    project = two_model_project(pytester, "10%")
    run(pytester, "--update-baselines").assert_outcomes(passed=4)
    stored = json.loads(baseline_file(project).read_text())
    assert stored["schema"] == "harness.baseline/2"
    entry = stored["cases"]["net-fp32-b1"]
    assert len(entry["trials"]["latency_median_ms"]) == 5 and len(entry["trials"]["throughput_sps"]) == 5
    assert len(entry["trials"]["cpu_ms"]) == 5  # CPU backend: CPU time per inference, the gate's load check

    for _ in range(2):  # A/A, repeatedly
        run(pytester).assert_outcomes(passed=4)
        assert all(c["verdict"] in ("unchanged", "improved", "ambiguous") for c in cases(project).values())

    slowdown = ("--simulate-slowdown", "1.2", "--slowdown-cases", "net-fp32-b1")
    outcome = run(pytester, *slowdown)
    if cases(project)["net-fp32-b1"]["verdict"] == "ambiguous":
        # A 2-core CI runner under a neighbour's bursts can spread five trials so wide that +20 % is not significant
        # (seen: +19.2 %, p=0.35); the gate then says it cannot tell, which passes, as it should. Such a burst does
        # not last long: a second run measures again and must decide. A false alarm on another case fails either run.
        outcome.assert_outcomes(passed=4)
        outcome = run(pytester, *slowdown)
    outcome.assert_outcomes(passed=3, failed=1)
    by_id = cases(project)
    assert {i for i, c in by_id.items() if c["status"] == "failed"} == {"net-fp32-b1"}
    slowed = by_id["net-fp32-b1"]
    assert slowed["verdict"] == "regressed" and slowed["measure"]["simulated_slowdown"] == 1.2
    assert slowed["measure"]["confirmation"]["first_verdict"] == "regressed"
    # Latency and throughput measure the same slowdown; on a loaded 2-core runner one of the two may fall short of
    # significance (then ambiguous), so the test asks for one regressed metric with its evidence, not a given one.
    regressed = [c for c in slowed["comparisons"] if c["verdict"] == "regressed"]
    assert {c["metric"] for c in regressed} & {"latency_median_ms", "throughput_sps"}
    # The evidence: the wall-clock change, or on a contended runner CPU time per inference, rose by about 20 %.
    cpu_ratio = median(slowed["trials"]["cpu_ms"]) / median(slowed["baseline"]["trials"]["cpu_ms"])
    decided = regressed[0]
    assert (decided["ci_low"] > 0 or decided["ci_high"] < 0) if not decided["note"] else cpu_ratio > 1.1
    text = outcome.stdout.str()
    assert "net-fp32-b1: median latency" in text or "net-fp32-b1: throughput" in text
    assert "confirmed by a second measurement" in text
    assert "simulated slowdown" in text
    for other in ("net-fp32-b2", "other-fp32-b1", "other-fp32-b2"):
        assert "simulated_slowdown" not in by_id[other]["measure"]


def test_without_confirmation_a_regression_fails_after_one_measurement(pytester, project):
    run(pytester, "--update-baselines", "-k", "other-fp32-b1").assert_outcomes(passed=1, deselected=3)
    outcome = run(pytester, "-k", "other-fp32-b1", "--simulate-slowdown", "1.5", "--no-confirm")
    outcome.assert_outcomes(failed=1, deselected=3)
    case = cases(project)["other-fp32-b1"]
    assert case["verdict"] == "regressed" and "confirmation" not in case["measure"]


def test_a_change_that_cannot_be_told_from_noise_is_ambiguous_and_fails_only_on_request(pytester, project):
    run(pytester, "--update-baselines", "-k", "net-fp32-b1").assert_outcomes(passed=1, deselected=3)
    path = baseline_file(project)
    stored = json.loads(path.read_text())
    entry = stored["cases"]["net-fp32-b1"]
    del entry["trials"]  # a baseline from before trials: one number, which no test can tell from noise
    entry["metrics"]["latency_median_ms"] *= 0.6
    entry["metrics"]["throughput_sps"] /= 0.6
    path.write_text(json.dumps(stored))

    outcome = run(pytester, "-k", "net-fp32-b1")
    outcome.assert_outcomes(passed=1, deselected=3)
    assert cases(project)["net-fp32-b1"]["verdict"] == "ambiguous"
    assert "ambiguous" in outcome.stdout.str()

    outcome = run(pytester, "-k", "net-fp32-b1", "--fail-on-ambiguous")
    outcome.assert_outcomes(failed=1, deselected=3)
    assert "--fail-on-ambiguous" in outcome.stdout.str()


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """Case ids in the order their runners open (one per trial)."""
    log: list[str] = []
    original = HarnessSession.open_runner

    def logged(self, case, engine, feeds):
        log.append(case.id)
        return original(self, case, engine, feeds)

    monkeypatch.setattr(HarnessSession, "open_runner", logged)
    return log


def test_interleave_measures_the_cases_round_by_round_before_the_items_report(pytester, project, opened):
    outcome = run(pytester, "--update-baselines", "--interleave", "-k", "b1")
    outcome.assert_outcomes(passed=2, deselected=2)
    assert "harness interleave: demo: 2 cases, 5 rounds, interleaved" in outcome.stdout.str()
    a, b = "net-fp32-b1", "other-fp32-b1"
    assert opened == [a, b, b, a, a, b, b, a, a, b]  # round r: trial r of every case, A B / B A
    by_id = cases(project)
    assert all(len(c["trials"]["latency_median_ms"]) == 5 and c["status"] == "passed" for c in by_id.values())
    assert by_id[a]["build"]["build_time_ms"] > 0 and baseline_file(project).is_file()

    opened.clear()
    outcome = run(pytester, "--interleave", "-k", "net-fp32-b1", "--simulate-slowdown", "1.5")
    outcome.assert_outcomes(failed=1, deselected=3)
    assert opened[:5] == [a] * 5 and len(opened) == 10  # one case: its trials, then the confirmation's
    assert cases(project)[a]["measure"]["confirmation"]["first_verdict"] == "regressed"

    outcome = run(pytester, "--interleave", "-k", "net-fp32-b1", "--ab-backend-option", "intra_op_threads=2")
    assert "harness interleave: not used: A/B mode interleaves its variants" in outcome.stdout.str()


@pytest.mark.parametrize(
    ("args", "order"),
    [
        ([], ["net-fp32-b1", "other-fp32-b1", "other-fp32-b1", "net-fp32-b1", "net-fp32-b1"]),  # CPU: interleaved
        (["--no-interleave"], ["net-fp32-b1"] * 5),  # each case's trials back to back, as its item runs
    ],
)
def test_cpu_cases_are_interleaved_unless_told_otherwise(pytester, project, opened, args, order):
    outcome = run(pytester, "--update-baselines", "-k", "b1", *args)
    outcome.assert_outcomes(passed=2, deselected=2)
    assert opened[:5] == order and len(opened) == 10
    assert ("harness interleave: demo: 2 cases, 5 rounds, interleaved" in outcome.stdout.str()) == (not args)
    opened.clear()
    single = run(pytester, "--update-baselines", "-k", "net-fp32-b1", *args)
    single.assert_outcomes(passed=1, deselected=3)
    assert opened == ["net-fp32-b1"] * 5  # one case: nothing to interleave it with
    assert "harness interleave" not in single.stdout.str()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--simulate-slowdown", "0.5"], "give a factor between 1.0 and 100"),
        (["--simulate-slowdown", "1.2", "--update-baselines"], "would record fake baselines"),
        (["--slowdown-cases", "net-*"], "give --simulate-slowdown FACTOR"),
        (["--trials", "0"], "measure at least 1 trial"),
        (["--gate-alpha", "0.9"], "--gate-alpha 0.9"),
        (["--ab-base", "/no/such/dir"], "not a folder"),
        (["--ab-backend-option", "intra_op_threads=2", "--update-baselines"], "writes no baselines"),
        (["--interleave", "-n", "2"], "run it without -n"),
        (["--baseline-processes", "0", "--update-baselines"], "--baseline-processes 0: give 1 or more"),
    ],
)
def test_bad_gate_options_are_one_line_usage_errors(pytester, project, args, message):
    outcome = run(pytester, *args)
    assert outcome.ret == pytest.ExitCode.USAGE_ERROR
    assert message in outcome.stderr.str()


def test_confirmation_in_a_fresh_process_measures_in_another_process_and_confirms_a_real_slowdown(pytester, project):
    # GPU backends confirm in a new process by default (--confirm-in auto); ONNX Runtime stands in for them here.
    run(pytester, "-k", "other-fp32-b1", "--update-baselines").assert_outcomes(passed=1)
    outcome = run(pytester, "-k", "other-fp32-b1", "--simulate-slowdown", "3", "--confirm-in", "fresh-process")
    outcome.assert_outcomes(failed=1)
    case = cases(project)["other-fp32-b1"]
    confirmation = case["measure"]["confirmation"]
    # the slowdown travels with the run's settings into the new process, so a real change shows there too
    assert confirmation["process"] == "fresh" and confirmation["pid"] != os.getpid()
    assert case["verdict"] == "regressed" and confirmation["second_verdict"] == "regressed"
    # the new process measures twice the suite's trials (harness.run.fresh.TRIALS_FACTOR), each a full trial long
    assert len(confirmation["trials"]["latency_median_ms"]) == 2 * 5
    assert not any("a new process could not" in w for w in case["warnings"])


def test_confirmation_falls_back_to_this_process_with_a_warning_when_a_new_one_cannot_measure(
    pytester, project, monkeypatch
):
    run(pytester, "-k", "other-fp32-b1", "--update-baselines").assert_outcomes(passed=1)
    # a new process that dies at once (here: an interpreter that does not exist on the PATH it is given)
    monkeypatch.setattr("harness.run.fresh.sys.executable", str(pytester.path / "no-python"))
    outcome = run(pytester, "-k", "other-fp32-b1", "--simulate-slowdown", "3", "--confirm-in", "fresh-process")
    outcome.assert_outcomes(failed=1)
    case = cases(project)["other-fp32-b1"]
    assert case["measure"]["confirmation"]["process"] == "same"
    assert any("confirmation measured in this process: a new process could not" in w for w in case["warnings"])


def test_a_baseline_recorded_from_several_processes_pools_their_trials(pytester, project):
    # GPU backends record from 3 processes by default (harness.run.fresh.BASELINE_PROCESSES); ONNX Runtime stands in.
    run(pytester, "-k", "other-fp32-b1", "--update-baselines", "--baseline-processes", "3").assert_outcomes(passed=1)
    case = cases(project)["other-fp32-b1"]
    pids = case["measure"]["baseline_processes"]
    assert len(pids) == 3 and len(set(pids)) == 3 and pids[0] == os.getpid()  # this one, then two new ones
    entry = json.loads(baseline_file(project).read_text())["cases"]["other-fp32-b1"]
    assert len(entry["trials"]["latency_median_ms"]) == 3 * 5  # the suite's 5 trials from each process
    assert entry["metrics"]["latency_median_ms"] == case["metrics"]["latency_median_ms"]
    assert len(case["measure"]["trial_iterations"]) == 3 * 5
    assert not any("baseline from" in w for w in case["warnings"])
    # judged against the pooled baseline, an unchanged rerun passes and a real slowdown fails
    run(pytester, "-k", "other-fp32-b1").assert_outcomes(passed=1)
    run(pytester, "-k", "other-fp32-b1", "--simulate-slowdown", "3").assert_outcomes(failed=1)


def test_a_baseline_keeps_the_processes_that_could_measure_and_says_so(pytester, project, monkeypatch):
    monkeypatch.setattr("harness.run.fresh.sys.executable", str(pytester.path / "no-python"))
    run(pytester, "-k", "other-fp32-b1", "--update-baselines", "--baseline-processes", "3").assert_outcomes(passed=1)
    case = cases(project)["other-fp32-b1"]
    assert case["measure"]["baseline_processes"] == [os.getpid()]
    assert any(
        w.startswith("baseline from 1 of 3 processes: a new process could not measure") for w in case["warnings"]
    )
    entry = json.loads(baseline_file(project).read_text())["cases"]["other-fp32-b1"]
    assert len(entry["trials"]["latency_median_ms"]) == 5


def test_a_cpu_baseline_comes_from_this_process_alone_by_default(pytester, project):
    run(pytester, "-k", "other-fp32-b1", "--update-baselines").assert_outcomes(passed=1)
    assert "baseline_processes" not in cases(project)["other-fp32-b1"]["measure"]
