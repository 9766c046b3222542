"""`harness calibrate`: it measures, prints the error rates of the gate and of the naive rule, and re-evaluates."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.calibrate import evaluating, rendering
from harness.calibrate.evaluating import TOLERANCE_GRID, quietest
from harness.cli.main import main
from harness.measure.trials import measure_rounds

SUITE = "suite: cal\nmodels:\n  - name: net\n    onnx_zoo: light_squeezenet\nbatch_sizes: [1]\n"


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE)
    return path


def test_calibrate_prints_false_alarm_and_detection_rates_next_to_the_naive_rule(suite, tmp_path, capsys):
    out_json = tmp_path / "cal.json"
    args = [
        "calibrate", str(suite), "--runs", "3", "--trials", "3", "--warmup-ms", "30", "--min-duration-ms", "90",
        "--min-iterations", "6", "--factors", "1.05,1.10", "--cache-dir", str(tmp_path / "cache"),
        "--json", str(out_json),
    ]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "A/A false alarms (gate | naive)" in text and "+5% detected" in text and "+10% detected" in text
    assert "against a baseline" in text and "interleaved A/B" in text
    assert re.search(r"net-fp32-b1\s+\d+/6 \d+\.\d% \| \d+/6 \d+\.\d%", text)  # 3 runs: 6 ordered pairs
    assert re.search(r"targets \(against a baseline\): A/A false alarms \d+\.\d% <= 1% (ok|MISSED)", text)
    assert re.search(r"targets \(interleaved A/B\): .*; time \d+\.\d\dx <= 3x (ok|MISSED)", text)
    assert "x a single-trial run of both" in text
    quiet_lines = re.findall(r"quietest tolerance \(A/A false alarms <= 1%\): (.*)", text)
    assert len(quiet_lines) == 2  # against a baseline, and A/B
    for line in quiet_lines:
        assert re.fullmatch(
            r"none up to 30%|\d+% \(\d+/\d+ false alarms\); there \+5% detected .*, \+10% detected .*", line
        )

    report = json.loads(out_json.read_text())
    overall = report["overall"]
    assert set(overall) == {"1.0", "1.05", "1.1"} and overall["1.0"]["comparisons"] == 6
    assert report["paired"]["overall"]["twin"]["comparisons"] == 3  # one A/B job per run and condition
    assert report["paired"]["pairs"] == 12 and 1 < report["paired"]["time_ratio"] < 5
    job = report["ab"]["net-fp32-b1@1.1"]  # saved, so --from-json re-evaluates A/B too
    assert len(job["reference"]) == len(job["candidate"]) == 3 * 2 * 12  # 3 runs of a job and its confirmation
    assert "probe_ms" in job["reference"][0] and job["reference"][0]["probe_ms"] is None  # pairs need no probe
    saved = report["trials"]["net-fp32-b1@1.1"]["trials"]
    assert len(saved) == 3 * 2 * 3  # 3 runs of 2 x 3 trials (a block and its confirmation)
    assert all(t["probe_ms"] > 0 for t in saved)  # against a baseline, the runner's speed around every trial
    # The load evidence: the host's busy time includes ours (/proc/stat counts in 10 ms ticks, so compare sums).
    assert all(t["cpu_ms"] > 0 for t in saved)
    assert sum(t["host_busy_ms"] for t in saved) >= 0.8 * sum(t["cpu_ms"] for t in saved)
    assert report["settings"]["runs_in"] == "one process per run"
    assert 0 < report["time_ratio"] < 5
    for quiet in (report["quietest"], report["paired"]["quietest"]):
        if quiet is not None:  # the tolerance found, its A/A count and the detection rates there
            assert quiet["tolerance"] in TOLERANCE_GRID and set(quiet["detected"]) == {"1.05", "1.1"}
            assert quiet["false_alarms"] <= 0.01 * quiet["comparisons"]

    # Re-evaluation measures nothing and reproduces the same counts; another tolerance changes them consistently.
    assert main(["calibrate", "--from-json", str(out_json), "--tolerance", "3%"]) == 0
    again = capsys.readouterr().out
    overall_rows = [line for line in text.splitlines() if line.startswith("overall")]
    assert [line for line in again.splitlines() if line.startswith("overall")] == overall_rows
    assert main(["calibrate", "--from-json", str(out_json), "--tolerance", "1000%"]) == 0
    wide = capsys.readouterr().out
    assert re.search(r"overall\s+0/6 0\.0% \|", wide)  # nothing exceeds a 1000 % tolerance


def test_the_injected_slowdown_is_what_the_runner_measures(suite, tmp_path, capsys):
    out_json = tmp_path / "cal.json"
    args = [
        "calibrate", str(suite), "--runs", "3", "--in-process", "--trials", "3", "--warmup-ms", "30",
        "--min-duration-ms", "90", "--min-iterations", "6", "--factors", "1.5", "--cache-dir", str(tmp_path / "cache"),
        "--json", str(out_json),
    ]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    data = json.loads(out_json.read_text())["trials"]
    base = [t["cpu_ms"] / len(t["latency_ms"]) for t in data["net-fp32-b1@1.0"]["trials"]]
    slow = [t["cpu_ms"] / len(t["latency_ms"]) for t in data["net-fp32-b1@1.5"]["trials"]]
    ratio = sorted(s / b for s, b in zip(slow, base, strict=True))[len(base) // 2]
    assert 1.25 < ratio < 1.9  # a busy-wait of 0.5 x each inference: CPU time per inference about x1.5


@pytest.mark.parametrize(("flag", "interleave"), [([], True), (["--no-interleave"], False)])  # CPU: on by default
def test_trials_are_laid_out_in_time_as_pytest_lays_them_out(suite, tmp_path, capsys, monkeypatch, flag, interleave):
    import harness.calibrate.measuring as measuring

    calls: list[tuple[int, int]] = []  # (variants measured together, rounds) in the order measured

    def recording(variants, spec, rounds, *args, **kwargs):
        calls.append((len(variants), rounds))
        return measure_rounds(variants, spec, rounds, *args, **kwargs)

    monkeypatch.setattr(measuring, "measure_rounds", recording)
    args = [
        "calibrate", str(suite), "--runs", "3", "--in-process", "--trials", "3", "--warmup-ms", "10",
        "--min-duration-ms", "30", "--min-iterations", "3", "--factors", "1.5", "--cache-dir", str(tmp_path / "cache"),
        "--json", str(tmp_path / "cal.json"), *flag,
    ]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    baseline_phase = [c for c in calls if c[1] == 3]  # A/B jobs measure 2 x 12 rounds of 2 variants
    # Per run, conditions 1.0 and 1.5 (the twin only serves A/B). On a CPU backend pytest measures trial r of every
    # case in round r, then each confirmation; with --no-interleave a case's 3 trials back to back, then its
    # confirmation.
    per_run = [(2, 3), (1, 3), (1, 3)] if interleave else [(1, 3)] * 4
    assert baseline_phase == per_run * 3
    assert [c for c in calls if c[1] != 3] == [(2, 24)] * 3 * 2  # 3 runs x 2 conditions (twin, 1.5)
    layout = "as pytest on CPU backends" if interleave else "a case's trials back to back"
    assert re.search(rf"against a baseline \(.*{layout}.*\):", text)
    saved = json.loads((tmp_path / "cal.json").read_text())
    assert set(saved["trials"]) == {"net-fp32-b1@1.0", "net-fp32-b1@1.5"}
    assert saved["settings"]["layout"] == ("interleaved" if interleave else "back to back")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--factors", "0.9"], "every factor must be above 1.0"),
        (["--tolerance", "lots"], "expected a percentage"),
        (["--runs", "2"], "give at least 3 runs"),
        (["--cases", "nothing-*"], "no case selected"),
    ],
)
def test_bad_arguments_are_one_line_errors(suite, tmp_path, capsys, extra, message):
    assert main(["calibrate", str(suite), "--cache-dir", str(tmp_path / "c"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_from_json_refuses_a_file_it_did_not_write(tmp_path, capsys):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    assert main(["calibrate", "--from-json", str(bad)]) == 2
    assert "not a calibration file written by --json" in capsys.readouterr().err


def _figures_at(rates: dict[str, float]) -> dict:
    return {
        "overall": {k: {"gate_rate": r, "gate_alarms": round(100 * r), "comparisons": 100} for k, r in rates.items()}
    }


def test_quietest_is_the_smallest_tolerance_whose_false_alarms_meet_the_target():
    # A/A false alarms fall as the tolerance widens (10% at 2%, ... 0.5% from 8% on); detection falls too.
    def evaluate_at(tol, factors):
        rates = {"1.0": 0.10 if tol < 0.05 else 0.02 if tol < 0.08 else 0.005}
        rates.update({str(f): max(0.0, 1.0 - 5 * tol) for f in factors})
        return _figures_at(rates)

    seen = []

    def spy(tol, factors):
        seen.append((tol, factors))
        return evaluate_at(tol, factors)

    found = quietest(spy, evaluate_at(0.03, (1.05, 1.1)), 0.03, (1.05, 1.1), aa="1.0")
    assert found == {"tolerance": 0.08, "false_alarms": 0, "comparisons": 100, "detected": {"1.05": 0.6, "1.1": 0.6}}
    assert (0.03, ()) not in seen  # the evaluation at the calibration's own tolerance is reused
    assert seen[-1] == (0.08, (1.05, 1.1))  # detection is judged only where the false alarms are met
    assert quietest(lambda tol, f: _figures_at({"twin": 0.5}), _figures_at({"twin": 0.5}), 0.03, (), aa="twin") is None


def test_evaluating_and_rendering_work_on_saved_figures_without_the_run_or_a_backend():
    """--from-json judges saved trials: the evaluation and the text never import the run, a backend or TensorRT."""
    forbidden = ("harness.run", "harness.backends", "harness.trt", "harness.pytest_plugin", "harness.measure.loop")
    for module in (evaluating, rendering):
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {m for m in imported if m.startswith(forbidden)}, module.__name__
    code = (
        "import sys, harness.calibrate.evaluating, harness.calibrate.rendering\n"
        "print(sorted(m for m in sys.modules if m.startswith(('harness.run', 'harness.trt', 'harness.pytest_plugin'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_calibration_cut_off_keeps_the_runs_it_measured(suite, tmp_path, capsys, monkeypatch):
    """A device job's time limit, Ctrl-C or a failed run ends a calibration early: the runs already measured are in
    the --json file after each one, and --from-json evaluates them, saying how many there are."""
    from harness.calibrate import command

    real, calls = subprocess.run, []

    def third_run_fails(cmd, **kwargs):
        calls.append(cmd)
        if len(calls) == 3:
            return subprocess.CompletedProcess(cmd, 1, "", "error: the GPU fell off the bus\n")
        return real(cmd, **kwargs)

    monkeypatch.setattr(command.subprocess, "run", third_run_fails)
    out_json = tmp_path / "cal.json"
    args = [
        "calibrate", str(suite), "--runs", "4", "--trials", "3", "--warmup-ms", "30", "--min-duration-ms", "90",
        "--min-iterations", "6", "--factors", "1.10", "--cache-dir", str(tmp_path / "cache"), "--json", str(out_json),
    ]  # fmt: skip
    assert main(args) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "calibration run 3 failed: error: the GPU fell off the bus" in err
    assert f"the 2 runs measured are in {out_json}" in err

    saved = json.loads(out_json.read_text())
    assert saved["partial"] == {"runs_done": 2, "runs": 4}
    assert len(saved["trials"]["net-fp32-b1@1.1"]["trials"]) == 2 * 2 * 3  # 2 runs of a block and its confirmation
    monkeypatch.setattr(command.subprocess, "run", real)
    assert main(["calibrate", "--from-json", str(out_json), "--tolerance", "3%"]) == 0
    text = capsys.readouterr().out
    assert "from 2 of 4 runs: the calibration stopped before the rest" in text
    assert re.search(r"overall\s+\d+/2 ", text)  # 2 runs: 2 ordered A/A pairs
