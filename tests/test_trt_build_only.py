"""``pytest benchmarks --backend tensorrt --build-only`` end to end: the zoo-trt suite (resnet50 and squeezenet at fp32,
fp16 and int8, batch 1 and 8) builds every engine with the installed TensorRT (TensorRT-RTX in CI, on the CPU), a
second run is served from the engine cache, and the gate judges build metrics only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from suite_runner import BENCH_MODULE, cases, isolated_args, tensorrt_missing

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "benchmarks" / "suites" / "zoo-trt.yaml"


pytestmark = pytest.mark.skipif(tensorrt_missing() is not None, reason=f"no TensorRT here: {tensorrt_missing()}")


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    pytester.makepyfile(test_bench=BENCH_MODULE)
    return pytester.path


def run(pytester: pytest.Pytester, suite: Path, *args: str) -> pytest.RunResult:
    root = pytester.path
    # A subprocess per run, like a real second CI run: nothing in memory carries over, only the cache folder.
    return pytester.runpytest_subprocess(
        "-p", "harness.pytest_plugin", "--backend", "tensorrt", "--build-only", "--suite", str(suite),
        *isolated_args(root), "--no-reports", *args,
    )  # fmt: skip


def test_zoo_suite_builds_every_engine_and_the_second_run_is_served_from_the_cache(pytester, project):
    first = run(pytester, SUITE)
    first.assert_outcomes(passed=12)
    built = cases(project)
    assert sorted(built) == sorted(
        f"{m}-{p}-b{b}" for m in ("resnet50", "squeezenet") for p in ("fp32", "fp16", "int8") for b in (1, 8)
    )
    for case in built.values():
        assert case["status"] == "passed" and case["verdict"] == "new"
        assert set(case["metrics"]) == {"build_time_ms", "engine_bytes"}  # nothing measured
        assert case["metrics"]["engine_bytes"] > 100_000
        assert case["build"]["cache_hit"] is False
        assert case["measure"] == {"build_only": True}
        (profile,) = case["build"]["config"]["profiles"]
        (shapes,) = profile.values()
        assert [s[0] for s in shapes] == [1, case["params"]["batch_size"], 8]  # one dynamic-batch profile
    # The precision reached the engine: the fp16 and int8 cases were built from the recipes' typed models.
    for case_id, maker in (("resnet50-fp16-b1", "float16"), ("squeezenet-int8-b8", "quantize_static")):
        case = built[case_id]
        assert maker in case["recipe"]["recipe"]
        assert case["build"]["model_sha256"] == case["recipe"]["sha256"]
    assert built["resnet50-fp16-b1"]["metrics"]["engine_bytes"] < built["resnet50-fp32-b1"]["metrics"]["engine_bytes"]
    first.stdout.fnmatch_lines(["*case*build ms*engine MiB*cache*", "*resnet50-int8-b8*miss*new*"])

    second = run(pytester, SUITE)
    second.assert_outcomes(passed=12)
    again = cases(project)
    assert all(c["build"]["cache_hit"] for c in again.values())
    for case_id, case in again.items():
        assert case["metrics"] == built[case_id]["metrics"]  # the recorded build, byte for byte the same engine
    phase_first = sum(c["build"]["build_phase_ms"] for c in built.values())
    phase_second = sum(c["build"]["build_phase_ms"] for c in again.values())
    assert phase_second * 10 <= phase_first, f"build phase {phase_first:.0f} ms, then {phase_second:.0f} ms"
    second.stdout.fnmatch_lines(["*resnet50-int8-b8*hit*new*"])


def test_build_only_gates_engine_size_against_the_baseline(pytester, project):
    suite = project / "suite.yaml"
    suite.write_text(
        "suite: trt-small\n"
        "models:\n  - name: squeezenet\n    onnx_zoo: light_squeezenet\n"
        "precisions: [fp32]\nbatch_sizes: [1, 8]\n"
        "tolerance: {default: 10%, build_time_ms: 500%}\n"
    )
    run(pytester, suite, "--update-baselines").assert_outcomes(passed=2)
    (key_dir,) = (project / "baselines").iterdir()
    stored = json.loads((key_dir / "trt-small.json").read_text())
    assert set(stored["cases"]["squeezenet-fp32-b1"]["metrics"]) == {"build_time_ms", "engine_bytes"}

    unchanged = run(pytester, suite)
    unchanged.assert_outcomes(passed=2)
    assert {c["verdict"] for c in cases(project).values()} == {"unchanged"}

    # The baseline engine was 30% smaller: the current one regressed in size, and the case fails.
    stored["cases"]["squeezenet-fp32-b8"]["metrics"]["engine_bytes"] *= 0.7
    (key_dir / "trt-small.json").write_text(json.dumps(stored))
    regressed = run(pytester, suite)
    regressed.assert_outcomes(passed=1, failed=1)
    regressed.stdout.fnmatch_lines(["*squeezenet-fp32-b8: engine size * vs baseline * (+42.9% > tolerance 10%)*"])
    assert cases(project)["squeezenet-fp32-b8"]["verdict"] == "regressed"


def test_build_only_with_onnxruntime_records_the_session_build(pytester, project):
    shutil.copy(SUITE, project / "zoo.yaml")
    suite = project / "suite.yaml"
    suite.write_text(
        "suite: ort-build\nmodels:\n  - name: squeezenet\n    onnx_zoo: light_squeezenet\nbatch_sizes: [1]\n"
    )
    root = pytester.path
    outcome = pytester.runpytest_subprocess(
        "-p",
        "harness.pytest_plugin",
        "--build-only",
        "--suite",
        str(suite),
        "--baseline-dir",
        str(root / "baselines"),
        "--report-dir",
        str(root / "reports"),
        "--harness-cache",
        str(root / "cache"),
    )
    outcome.assert_outcomes(passed=1)
    (case,) = cases(project).values()
    assert set(case["metrics"]) == {"build_time_ms", "engine_bytes"}
    assert not case["samples"]


def test_build_only_gates_build_time_with_its_own_tolerance(pytester, project):
    suite = project / "suite.yaml"
    suite.write_text(
        "suite: trt-time\nmodels:\n  - name: squeezenet\n    onnx_zoo: light_squeezenet\n"
        "precisions: [fp32]\nbatch_sizes: [1]\n"
    )
    run(pytester, suite, "--update-baselines").assert_outcomes(passed=1)
    path = next((project / "baselines").glob("*/trt-time.json"))
    stored = json.loads(path.read_text())
    stored["cases"]["squeezenet-fp32-b1"]["metrics"]["build_time_ms"] /= 3  # the baseline's build took a third
    path.write_text(json.dumps(stored))

    # A real build (a cold cache) three times as slow as the baseline's fails: build time tolerance 50% by default.
    slower = run(pytester, suite, "--harness-cache", str(project / "cold-cache"))
    slower.assert_outcomes(failed=1)
    slower.stdout.fnmatch_lines(["*squeezenet-fp32-b1: build time * vs baseline * (+* > tolerance 50%)*"])
    case = cases(project)["squeezenet-fp32-b1"]
    assert case["build"]["cache_hit"] is False and case["verdict"] == "regressed"
