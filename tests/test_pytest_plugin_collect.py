"""pytest collects suite files directly (harness.pytest_plugin.collect): which YAML files are suites, how --suite, a
bench module and
a folder walk share the work, and the hint when there is nothing to run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime  # noqa: F401  imported once here: pytester's in-process runs would import it again in every run
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness.pytest_plugin.collect import HINT
from harness.pytest_plugin.shard import item_key
from tests.suite_runner import BENCH_MODULE

pytest_plugins = ["pytester"]

FAST = ["--warmup-ms", "5", "--min-duration-ms", "20", "--min-iterations", "3", "--trials", "1"]
NOT_SUITES = {
    "mkdocs.yml": "site_name: demo\nnav:\n  - Home: index.md\n",
    "workflow.yml": "on: push\njobs:\n  test: {runs-on: ubuntu-latest, steps: [{run: pytest}]}\n",
    "nested-keys.yaml": "meta:\n  suite: not-top-level\nmodels: []\n",
}


def tiny_model(path: Path) -> None:
    """y = relu(x @ W): input x [batch, 4] float, a model ONNX Runtime runs in microseconds."""
    weight = numpy_helper.from_array(np.full((4, 4), 0.5, dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [weight],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))


def suite_text(name: str, model: str, batch_sizes: str = "[1]", path: str = "tiny.onnx") -> str:
    return f"suite: {name}\nmodels:\n  - {{name: {model}, path: {path}}}\nbatch_sizes: {batch_sizes}\n"


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    """bench/a.yaml (net at batch 1 and 2), bench/nested/b.yml (other at batch 1) and YAML files that are not suites."""
    bench = pytester.path / "bench"
    (bench / "nested").mkdir(parents=True)
    tiny_model(bench / "tiny.onnx")
    (bench / "a.yaml").write_text(suite_text("a", "net", "[1, 2]"))
    (bench / "nested" / "b.yml").write_text(suite_text("b", "other", path="../tiny.onnx"))
    for name, text in NOT_SUITES.items():
        (bench / name).write_text(text)
    return pytester.path


def collected(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::" in line]


A_IDS = ["bench/a.yaml::net-fp32-b1", "bench/a.yaml::net-fp32-b2"]
B_IDS = ["bench/nested/b.yml::other-fp32-b1"]


def test_a_folder_collects_every_suite_and_no_other_yaml(pytester, project):
    result = pytester.runpytest("--collect-only", "-q", "bench")
    assert result.ret == 0
    assert collected(result) == A_IDS + B_IDS


def test_the_ini_pattern_narrows_the_walk_but_a_named_file_is_always_a_suite(pytester, project):
    pytester.makeini("[pytest]\nharness_suite_files = bench/nested/*.yml\n")
    assert collected(pytester.runpytest("--collect-only", "-q", "bench")) == B_IDS
    assert collected(pytester.runpytest("--collect-only", "-q", "bench/a.yaml")) == A_IDS


def test_a_named_yaml_that_is_not_a_suite_is_refused_in_one_line(pytester, project):
    result = pytester.runpytest("-q", "bench/mkdocs.yml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1 and "mkdocs.yml: site_name: unknown key" in errors[0]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_case_ids_select_with_k_and_the_cases_run_through_the_session(pytester, project):
    result = pytester.runpytest("-q", "bench", "-k", "net-fp32-b2 or other", *FAST)
    result.assert_outcomes(passed=2, deselected=1)
    data = json.loads((project / "reports" / "results.json").read_text())
    assert sorted((c["id"], c["status"]) for c in data["cases"]) == [
        ("net-fp32-b2", "passed"),
        ("other-fp32-b1", "passed"),
    ]
    assert (project / "reports" / "report.html").is_file()


def test_suite_option_runs_suites_without_a_python_file_and_stops_the_walk(pytester, project):
    assert collected(pytester.runpytest("--collect-only", "-q", "--suite", "bench/a.yaml")) == A_IDS
    assert collected(pytester.runpytest("--collect-only", "-q", "bench", "--suite", "bench/a.yaml")) == A_IDS
    globbed = pytester.runpytest("--collect-only", "-q", "--suite", "bench/nested/*.yml", "--suite", "bench/a.yaml")
    assert collected(globbed) == B_IDS + A_IDS
    missing = pytester.runpytest("--collect-only", "-q", "--suite", "bench/nope.yaml")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    assert "--suite bench/nope.yaml: no suite file matches; check the path" in missing.stderr.str()


def test_a_bench_module_and_the_walk_run_a_suite_once(pytester, project):
    pytester.makepyfile(test_bench=BENCH_MODULE)
    pytester.makeini("[pytest]\nharness_suites = bench/a.yaml\n")
    result = pytester.runpytest("--collect-only", "-q")
    assert result.ret == 0
    assert collected(result) == [
        *B_IDS,
        "test_bench.py::test_case[net-fp32-b1]",
        "test_bench.py::test_case[net-fp32-b2]",
    ]
    result.stdout.fnmatch_lines(["3/5 tests collected (2 deselected)*"])


def test_a_bench_module_without_a_selection_leaves_the_walk_alone(pytester, project):
    pytester.makepyfile(test_bench=BENCH_MODULE)
    result = pytester.runpytest("--collect-only", "-q")
    assert result.ret == 0
    assert collected(result) == A_IDS + B_IDS


def test_one_case_id_from_two_suites_is_refused(pytester, project):
    (project / "bench" / "nested" / "b.yml").write_text(suite_text("b", "net", path="../tiny.onnx"))
    result = pytester.runpytest("--collect-only", "-q", "bench")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "case 'net-fp32-b1' also comes from" in result.stderr.str()


def test_shards_split_collected_suites_by_case_id(pytester, project):
    items = pytester.inline_genitems("bench")[0]
    assert [item_key(item) for item in items] == ["net-fp32-b1", "net-fp32-b2", "other-fp32-b1"]
    parts = [collected(pytester.runpytest("--collect-only", "-q", "bench", "--shard", f"{i}/2")) for i in (1, 2)]
    assert sorted(parts[0] + parts[1]) == sorted(A_IDS + B_IDS) and not set(parts[0]) & set(parts[1])


def test_xdist_workers_run_collected_suites(pytester, project):
    result = pytester.runpytest_subprocess("bench", "-n", "2", "-p", "no:cacheprovider", *FAST)
    result.assert_outcomes(passed=3)
    data = json.loads((project / "reports" / "results.json").read_text())
    assert sorted(c["id"] for c in data["cases"]) == ["net-fp32-b1", "net-fp32-b2", "other-fp32-b1"]


def test_nothing_to_run_prints_the_hint(pytester):
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert HINT in result.stdout.str()


@pytest.mark.parametrize("args", [[], ["-k", "no_such_test"]])
def test_other_projects_never_see_the_hint(pytester, args):
    pytester.makepyfile(test_plain="def test_one():\n    pass\n")
    (pytester.path / "config.yaml").write_text("models: [a]\nsuite_like: false\n")
    result = pytester.runpytest(*args)
    assert HINT not in result.stdout.str()
    assert collected(pytester.runpytest("--collect-only", "-q")) == ["test_plain.py::test_one"]
