"""End to end through pytest: suite -> cases -> measurement -> results.json -> baselines -> gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from suite_runner import run_suite, two_model_project

from harness.models.sources import zoo_dir

pytest_plugins = ["pytester"]

FAST = ["--warmup-ms", "20", "--min-duration-ms", "150", "--min-iterations", "5"]


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    # wide: this machine is shared; the slow model below is ~10x slower
    return two_model_project(pytester, "50%")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return run_suite(pytester, *FAST, *args)


def results(root: Path) -> dict:
    return json.loads((root / "reports" / "results.json").read_text())


def test_first_run_records_every_case_as_new(pytester, project):
    outcome = run(pytester)
    outcome.assert_outcomes(passed=4)
    data = results(project)
    assert data["schema"] == "harness.results/1"
    assert data["environment"]["backend"]["name"] == "onnxruntime"
    assert data["environment"]["key"].endswith("__onnxruntime-" + data["environment"]["backend"]["version"])
    cases = {c["id"]: c for c in data["cases"]}
    assert set(cases) == {"net-fp32-b1", "net-fp32-b2", "other-fp32-b1", "other-fp32-b2"}
    for case in cases.values():
        assert case["verdict"] == "new" and case["status"] == "passed"
        assert case["metrics"]["latency_median_ms"] > 0 and case["metrics"]["throughput_sps"] > 0
        assert len(case["samples"]["latency_ms"]) >= 5
        assert case["params"]["backend"]["settings"]["intra_op_threads"] == 1
    assert "benchmark summary" in outcome.stdout.str()


def test_slower_model_under_the_same_name_fails_exactly_its_cases(pytester, project):
    run(pytester, "--update-baselines").assert_outcomes(passed=4)
    key = results(project)["environment"]["key"]
    stored = json.loads((project / "baselines" / key / "demo.json").read_text())
    assert sorted(stored["cases"]) == ["net-fp32-b1", "net-fp32-b2", "other-fp32-b1", "other-fp32-b2"]

    shutil.copy(zoo_dir() / "light_resnet50.onnx", project / "net.onnx")  # ~10x the work of squeezenet
    outcome = run(pytester)
    outcome.assert_outcomes(passed=2, failed=2)
    failed = {c["id"] for c in results(project)["cases"] if c["status"] == "failed"}
    assert failed == {"net-fp32-b1", "net-fp32-b2"}
    text = outcome.stdout.str()
    assert "net-fp32-b1: median latency" in text and "vs baseline" in text and "> tolerance 50%" in text


def test_update_keeps_cases_that_did_not_run(pytester, project):
    run(pytester, "--update-baselines", "-k", "net").assert_outcomes(passed=2, deselected=2)
    run(pytester, "--update-baselines", "-k", "other").assert_outcomes(passed=2, deselected=2)
    key = results(project)["environment"]["key"]
    stored = json.loads((project / "baselines" / key / "demo.json").read_text())
    assert len(stored["cases"]) == 4
    assert (project / "baselines" / key / "demo.json").read_text().endswith("}\n")
    assert not list((project / "baselines" / key).glob("*.tmp")), "no temporary files left behind"


def test_strict_baselines_fails_new_cases_and_names_other_keys(pytester, project):
    run(pytester, "--update-baselines", "-k", "other-fp32-b1")
    key = results(project)["environment"]["key"]
    (project / "baselines" / key).rename(project / "baselines" / "cpu-elsewhere__onnxruntime-0.0")
    outcome = run(pytester, "--strict-baselines", "-k", "other-fp32-b1")
    outcome.assert_outcomes(failed=1)
    assert "no baseline yet" in outcome.stdout.str()
    assert "exist under: cpu-elsewhere__onnxruntime-0.0" in outcome.stdout.str()


def test_a_crashing_case_keeps_the_finished_ones(pytester, project):
    (project / "suite.yaml").write_text(
        "suite: demo\nmodels:\n  - name: good\n    onnx_zoo: light_squeezenet\n  - name: broken\n    path: net.onnx\n"
    )
    (project / "net.onnx").write_bytes(b"not an onnx model")
    outcome = run(pytester)
    outcome.assert_outcomes(passed=1, failed=1)
    cases = {c["id"]: c for c in results(project)["cases"]}
    assert cases["good-fp32-b1"]["status"] == "passed"
    assert cases["broken-fp32-b1"]["status"] == "error"
    assert "not a readable ONNX model" in cases["broken-fp32-b1"]["message"]


def test_malformed_suite_stops_with_one_line_naming_file_and_key(pytester, project):
    (project / "suite.yaml").write_text("suite: demo\nmodels:\n  - name: n\n    onnx_zo: light_squeezenet\n")
    outcome = run(pytester)
    assert outcome.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in outcome.stderr.lines if line.startswith("ERROR:")]
    assert errors == [f"ERROR: {project / 'suite.yaml'}: models[0].onnx_zo: unknown key; did you mean 'onnx_zoo'?"]
    assert "Traceback" not in outcome.stdout.str() + outcome.stderr.str()


def test_unknown_backend_and_bad_backend_option_are_usage_errors(pytester, project):
    outcome = run(pytester, "--backend", "nosuch")
    assert outcome.ret == pytest.ExitCode.USAGE_ERROR
    assert any("unknown backend 'nosuch'" in line for line in outcome.stderr.lines)
    outcome = run(pytester, "--backend-option", "intra_op_thread=2")
    assert outcome.ret == pytest.ExitCode.USAGE_ERROR
    assert any("did you mean 'intra_op_threads'?" in line for line in outcome.stderr.lines)


def test_k_selects_cases_by_id(pytester, project):
    outcome = run(pytester, "--collect-only", "-q", "-k", "net-fp32-b2")
    assert "test_bench.py::test_case[net-fp32-b2]" in outcome.stdout.str()
    assert "net-fp32-b1" not in outcome.stdout.str()
