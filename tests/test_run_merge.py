"""harness merge, and pytest-xdist: shard and worker results become one results file, one report, one gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from suite_runner import BENCH_MODULE

from harness.cli.main import main
from harness.core.errors import HarnessError
from harness.core.results import CaseResult, RunResults
from harness.models.sources import zoo_dir
from harness.run.merge import find_results, merge

pytest_plugins = ["pytester"]

FAST = ["--warmup-ms", "10", "--min-duration-ms", "60", "--min-iterations", "3", "-p", "no:cacheprovider"]
CASES = {"net-fp32-b1", "net-fp32-b2", "net-fp32-b3"}


# -- merging records -------------------------------------------------------------------------------------------------
def part(ids: list[str], shard: tuple[int, int] | None = None, gate: str = "passed", key: str = "k1") -> RunResults:
    results = RunResults(environment={"key": key})
    results.suites["demo"] = "suite.yaml"
    for case_id in ids:
        results.add(
            CaseResult(
                id=case_id, params={"suite": "demo", "model": "m", "batch_size": int(case_id[-1])}, verdict="new"
            )
        )
    if shard:
        results.runs.append(
            {"shard": {"index": shard[0], "count": shard[1], "items": ids}, "exit_status": 0, "gate": gate}
        )
    return results


def test_merge_is_the_union_in_matrix_order():
    out = merge([("s2", part(["m-b2"], (2, 2))), ("s1", part(["m-b1", "m-b3"], (1, 2)))])
    assert [c.id for c in out.results.cases] == ["m-b1", "m-b2", "m-b3"]
    assert out.gate_passed and out.problems == []
    assert [r["source"] for r in out.results.runs] == ["s2", "s1"]


def test_a_missing_shard_fails_the_merged_run():
    out = merge([("s1", part(["m-b1"], (1, 3))), ("s3", part(["m-b3"], (3, 3)))])
    assert not out.gate_passed
    assert any("no results from shard 2/3" in p for p in out.problems)
    # --expect-shards catches it even when no part says how many shards there were
    out = merge([("a", part(["m-b1"]))], expect_shards=2)
    assert any("shard 1/2, 2/2" in p for p in out.problems)


def test_a_case_a_shard_owned_but_never_recorded_is_reported_lost():
    lost = part(["m-b1"], (1, 1))
    lost.runs[0]["shard"]["items"] = ["m-b1", "m-b2"]  # the process died while running m-b2
    out = merge([("s1", lost)])
    assert out.problems == ["1 case(s) selected by a shard have no result: m-b2"]


def test_a_shard_that_failed_its_gate_fails_the_merged_run():
    out = merge([("s1", part(["m-b1"], (1, 2))), ("s2", part(["m-b2"], (2, 2), gate="failed"))])
    assert not out.gate_passed
    assert any("shard 2/2 (s2) failed its gate" in p for p in out.problems)


def test_overlapping_shards_and_mixed_machines_are_refused():
    with pytest.raises(HarnessError, match="'m-b1' is in both a and b; the shards overlap"):
        merge([("a", part(["m-b1"])), ("b", part(["m-b1", "m-b2"]))])
    with pytest.raises(HarnessError, match="different baseline keys: k1 \\(a\\), k2 \\(b\\)"):
        merge([("a", part(["m-b1"])), ("b", part(["m-b2"], key="k2"))])


def test_folders_stand_for_the_results_files_below_them(tmp_path):
    for name in ("perf-shard-1-of-2", "perf-shard-2-of-2"):
        part(["m-b1"]).write(tmp_path / "shards" / name / "results.json")
    (tmp_path / "shards" / "perf-shard-1-of-2" / "summary.md").write_text("not results")
    found = find_results([tmp_path / "shards"])
    assert [p.parent.name for p in found] == ["perf-shard-1-of-2", "perf-shard-2-of-2"]
    assert find_results([tmp_path / "shards", found[0]]) == found  # named twice, read once
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match=r"no results\.json below this folder"):
        find_results([tmp_path / "empty"])


# -- end to end: shards and xdist workers through pytest, then harness merge ---------------------------------------
@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    pytester.makepyfile(test_bench=BENCH_MODULE)
    shutil.copy(zoo_dir() / "light_squeezenet.onnx", pytester.path / "net.onnx")
    (pytester.path / "suite.yaml").write_text(
        "suite: demo\nmodels:\n  - name: net\n    path: net.onnx\nbatch_sizes: [1, 2, 3]\ntolerance: 50%\n"
        "backends:\n  onnxruntime: {intra_op_threads: 1}\n"
    )
    return pytester.path


def bench(pytester: pytest.Pytester, report: str, *args: str, subprocess: bool = False) -> pytest.RunResult:
    root = pytester.path
    argv = [
        "--suite",
        str(root / "suite.yaml"),
        "--baseline-dir",
        str(root / "baselines"),
        "--report-dir",
        str(root / report),
        "--harness-cache",
        str(root / "cache"),
        *FAST,
        *args,
    ]
    return pytester.runpytest_subprocess(*argv) if subprocess else pytester.runpytest(*argv)


def case_ids(path: Path) -> list[str]:
    return [c["id"] for c in json.loads(path.read_text())["cases"]]


def test_merging_two_shards_gives_the_unsharded_case_set_one_report_and_the_step_summary(
    pytester, project, monkeypatch, capsys
):
    bench(pytester, "shard1", "--shard", "1/2").assert_outcomes(passed=2)
    bench(pytester, "shard2", "--shard", "2/2").assert_outcomes(passed=1)
    shard1 = json.loads((project / "shard1" / "results.json").read_text())
    assert shard1["runs"][0]["shard"] == {"index": 1, "count": 2, "items": ["net-fp32-b1", "net-fp32-b3"]}
    assert shard1["runs"][0]["gate"] == "passed"

    summary = project / "step-summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    merged = project / "merged"
    inputs = [str(project / "shard1"), str(project / "shard2" / "results.json")]
    durations_out = str(project / "durations" / "{key}.json")
    status = main(
        ["merge", *inputs, "--report-dir", str(merged), "--expect-shards", "2", "--durations-out", durations_out]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert sorted(case_ids(merged / "results.json")) == sorted(CASES)
    assert "gate: passed" in out

    # one report of the merged run: the report module's files when present, the summary in any case
    assert (merged / "summary.md").is_file()
    if (merged / "report.html").exists():
        html = (merged / "report.html").read_text()
        assert all(case in html for case in CASES)
    text = summary.read_text()
    assert text.startswith("earlier step\n")  # appended, not replaced
    assert text == "earlier step\n" + (merged / "summary.md").read_text()  # the merged run's summary, once
    assert "Merged run: gate passed" in text

    durations = list((project / "durations").glob("*.json"))
    key = json.loads((merged / "results.json").read_text())["environment"]["key"]
    assert [p.name for p in durations] == [f"{key}.json"]
    assert set(json.loads(durations[0].read_text())["durations_s"]) == CASES

    # the unsharded run has the same case set
    bench(pytester, "whole").assert_outcomes(passed=3)
    assert sorted(case_ids(project / "whole" / "results.json")) == sorted(CASES)


def test_a_shard_that_failed_its_gate_makes_merge_fail(pytester, project, capsys):
    bench(pytester, "shard1", "--shard", "1/2").assert_outcomes(passed=2)
    bench(pytester, "shard2", "--shard", "2/2", "--strict-baselines").assert_outcomes(failed=1)
    data = json.loads((project / "shard2" / "results.json").read_text())
    assert data["runs"][0]["gate"] == "failed" and data["runs"][0]["exit_status"] == 1
    status = main(["merge", str(project / "shard1"), str(project / "shard2"), "--report-dir", str(project / "m")])
    out = capsys.readouterr().out
    assert status == 1
    assert "failed its gate: pytest exit status 1" in out and "gate: FAILED" in out
    assert sorted(case_ids(project / "m" / "results.json")) == sorted(CASES)  # written all the same
    assert "gate **failed**" in (project / "m" / "summary.md").read_text()
    # only one shard: the other is named as missing, and the merged run is incomplete (never passed)
    assert main(["merge", str(project / "shard1"), "--report-dir", str(project / "m1"), "--no-report"]) == 3
    out = capsys.readouterr().out
    assert "no results from shard 2/2" in out and out.rstrip().endswith("gate: incomplete")


def test_merge_reports_unusable_input_in_one_line(tmp_path, capsys):
    assert main(["merge", str(tmp_path / "nothing")]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"harness merge: error: {tmp_path / 'nothing'}: no such results file or folder"
    )
    (tmp_path / "results.json").write_text('{"schema": "other/1"}')
    assert main(["merge", str(tmp_path / "results.json"), "--report-dir", str(tmp_path / "out")]) == 2
    assert "not a results file of schema harness.results/1" in capsys.readouterr().err


def test_xdist_workers_write_their_own_files_and_the_controller_merges_them(pytester, project, monkeypatch):
    pytest.importorskip("xdist")
    step_summary = project / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    outcome = bench(pytester, "reports", "-n", "2", "--update-baselines", subprocess=True)
    outcome.assert_outcomes(passed=3)
    results = json.loads((project / "reports" / "results.json").read_text())
    assert sorted(c["id"] for c in results["cases"]) == sorted(CASES)
    (run,) = results["runs"]
    assert run["workers"] == ["gw0", "gw1"] and run["gate"] == "passed"
    assert not (project / "reports" / ".xdist").exists()  # worker files removed once merged
    # one report and one step summary, of the merged run: the workers write neither
    assert (project / "reports" / "report.html").is_file()
    assert step_summary.read_text() == (project / "reports" / "summary.md").read_text()
    assert all(case in (project / "reports" / "report.html").read_text() for case in CASES)
    # the baselines were written once, by the controller, with every case
    (baseline,) = (project / "baselines").glob("*/demo.json")
    assert sorted(json.loads(baseline.read_text())["cases"]) == sorted(CASES)


def test_xdist_with_shards_records_the_shard(pytester, project):
    pytest.importorskip("xdist")
    bench(pytester, "reports", "-n", "2", "--shard", "1/2", subprocess=True).assert_outcomes(passed=2)
    (run,) = json.loads((project / "reports" / "results.json").read_text())["runs"]
    assert run["shard"]["index"] == 1 and sorted(run["shard"]["items"]) == ["net-fp32-b1", "net-fp32-b3"]


def test_worker_files_left_by_a_crashed_controller_are_recovered_by_merge(tmp_path, capsys):
    run_dir = tmp_path / "reports" / ".xdist" / "0123abcd"
    part(["m-b1"]).write(run_dir / "gw0" / "results.json")
    part(["m-b2"]).write(run_dir / "gw1" / "results.json")
    # every finished case is recovered, but nothing proves the workers finished: the gate is incomplete, not passed
    assert main(["merge", str(tmp_path / "reports" / ".xdist"), "--report-dir", str(tmp_path / "out")]) == 3
    assert case_ids(tmp_path / "out" / "results.json") == ["m-b1", "m-b2"]
    out = capsys.readouterr().out
    assert "written by a session that did not finish (no run record" in out
    assert out.rstrip().endswith("gate: incomplete") and "gate: passed" not in out
    assert "gate **incomplete**" in (tmp_path / "out" / "summary.md").read_text()


def test_a_plain_run_killed_mid_case_merges_as_incomplete(tmp_path, capsys):
    killed = part(["m-b1"])
    killed.runs.append({"shard": None, "exit_status": 0, "gate": "passed", "items": ["m-b1", "m-b2"]})
    killed.write(tmp_path / "a" / "results.json")
    assert main(["merge", str(tmp_path / "a"), "--report-dir", str(tmp_path / "out"), "--no-report"]) == 3
    out = capsys.readouterr().out
    assert "1 case(s) selected by a session have no result: m-b2" in out and "gate: incomplete" in out


GPU_PROBE = """
import os, pathlib

def test_probe(worker_id):
    pathlib.Path(f"{worker_id}.gpu").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
"""


def test_each_xdist_worker_gets_its_own_gpu(pytester):
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_probe=GPU_PROBE.replace("test_probe", "test_a") + GPU_PROBE.replace("test_probe", "test_b")
    )
    pytester.runpytest_subprocess("-n", "2", "--worker-gpus", "5,7", "--dist", "each", "-p", "no:cacheprovider")
    seen = {p.stem: p.read_text() for p in pytester.path.glob("gw*.gpu")}
    assert seen == {"gw0": "5", "gw1": "7"}
    for path in pytester.path.glob("gw*.gpu"):
        path.unlink()
    # -n auto: as many workers as GPUs
    pytester.runpytest_subprocess("-n", "auto", "--worker-gpus", "3,4,6", "--dist", "each", "-p", "no:cacheprovider")
    seen = {p.stem: p.read_text() for p in pytester.path.glob("gw*.gpu")}
    assert seen == {"gw0": "3", "gw1": "4", "gw2": "6"}


def test_more_workers_than_gpus_is_refused(pytester):
    pytest.importorskip("xdist")
    pytester.makepyfile(test_probe=GPU_PROBE)
    outcome = pytester.runpytest_subprocess("-n", "3", "--worker-gpus", "5,7", "-p", "no:cacheprovider")
    assert outcome.ret == pytest.ExitCode.USAGE_ERROR
    outcome.stderr.fnmatch_lines(["*-n 3 starts more workers than GPUs (2: 5,7); use -n 2 for one worker per GPU*"])


def test_a_broken_report_does_not_hide_the_merged_gate(tmp_path, monkeypatch, capsys):
    import harness.cli.merge

    def broken(*args, **kwargs):
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(harness.cli.merge, "write_reports", broken)
    part(["m-b1"], (1, 2)).write(tmp_path / "s1" / "results.json")
    part(["m-b2"], (2, 2), gate="failed").write(tmp_path / "s2" / "results.json")
    assert main(["merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--report-dir", str(tmp_path / "out")]) == 1
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "The report could not be written: RuntimeError: renderer exploded" in summary
    assert "m-b1" in summary and "m-b2" in summary and "gate **failed**" in summary
    assert case_ids(tmp_path / "out" / "results.json") == ["m-b1", "m-b2"]
