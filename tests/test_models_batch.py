"""The batch axis is the case's batch size, whatever the model calls it: cases -b1 and -b4 feed different batches, a
shape set may not size the batch axis, fixed-batch exports of any size become dynamic (or say which batch they run),
int8 calibration feeds batches the model accepts, and TensorRT's profiles follow the same batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import real_models
from suite_runner import cases, isolated_args, model_project, run_suite, tensorrt_missing

pytest_plugins = ["pytester"]

FAST = ["--warmup-ms", "5", "--min-duration-ms", "20", "--min-iterations", "3", "--trials", "1", "--no-reports"]
LOOSE = "accuracy: {int8: {max_mismatch: 1.0, min_cosine: 0.0, min_top1: 0.0}}\n"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("batch-models")
    real_models.gpt2(folder / "gpt2.onnx")
    real_models.fixed_cnn(folder / "cnn1.onnx", 1)
    real_models.fixed_cnn(folder / "cnn8.onnx", 8)
    real_models.bert(folder / "bert2.onnx", fixed_batch=2)
    return folder


def test_a_batch_axis_named_n_takes_the_case_batch_and_a_shape_set_may_not_size_it(pytester, models):
    root = model_project(
        pytester,
        models,
        "suite: n\nmodels:\n  - {name: gpt2, path: gpt2.onnx}\n"
        "  - {name: sized, path: gpt2.onnx, shapes: {w48: {N: 4, seq: 8}}}\n"
        "batch_sizes: [1, 4]\nshapes: {s8: {seq: 8}}\n",
    )
    outcome = run_suite(pytester, *FAST)
    outcome.assert_outcomes(passed=2, failed=2)
    found = cases(root)
    one, four = found["gpt2-fp32-b1-s8"], found["gpt2-fp32-b4-s8"]
    assert one["inputs"]["input_ids"]["shape"] == [1, 8] and four["inputs"]["input_ids"]["shape"] == [4, 8]
    assert one["status"] == four["status"] == "passed"
    for batch in (1, 4):
        refused = found[f"sized-fp32-b{batch}-w48"]
        assert refused["status"] == "error" and "\n" not in refused["message"]
        assert "shape set 'w48' sets 'N', the batch axis of model 'sized'" in refused["message"]
        assert "remove 'N' from shapes.w48 and choose the batch with batch_sizes" in refused["message"]


def test_fixed_batch_exports_of_any_size_become_dynamic_and_calibrate(pytester, models):
    root = model_project(
        pytester,
        models,
        "suite: fixed\nmodels:\n  - {name: cnn1, path: cnn1.onnx}\n  - {name: cnn8, path: cnn8.onnx}\n"
        "precisions: [fp32, int8]\nbatch_sizes: [1, 3, 8]\ncalibration: {samples: 4}\n" + LOOSE,
    )
    outcome = run_suite(pytester, *FAST)
    outcome.assert_outcomes(passed=12)
    found = cases(root)
    for name in ("cnn1", "cnn8"):
        for batch in (1, 3, 8):
            case = found[f"{name}-int8-b{batch}"]
            assert case["inputs"]["x"]["shape"] == [batch, 3, 8, 8]
            assert case["recipe"]["calibration"]["samples"] == 4
            assert case["accuracy"]["worst_cosine"] > 0.9  # int8 vs the fp32 reference on the rewritten graph


def test_a_graph_that_pins_its_batch_says_which_batch_runs_and_calibrates_at_it(pytester, models):
    # transformers' mask code, traced at batch 2, bakes the batch into arithmetic no rewrite can follow.
    root = model_project(
        pytester,
        models,
        "suite: pinned\nmodels:\n  - {name: bert, path: bert2.onnx}\nprecisions: [fp32, int8]\nbatch_sizes: [1, 2]\n"
        "calibration: {samples: 4}\n" + LOOSE,
    )
    outcome = run_suite(pytester, *FAST)
    outcome.assert_outcomes(passed=2, failed=2)
    found = cases(root)
    assert found["bert-fp32-b2"]["status"] == found["bert-int8-b2"]["status"] == "passed"
    assert found["bert-int8-b2"]["inputs"]["input_ids"]["range"] == [0, real_models.BERT_VOCAB - 1]
    for precision in ("fp32", "int8"):
        message = found[f"bert-{precision}-b1"]["message"]
        assert "model 'bert' runs only at batch 2 (" in message and "\n" not in message
        assert "set batch_sizes: [2] for models[0], or export it with a dynamic batch axis" in message


@pytest.mark.skipif(tensorrt_missing() is not None, reason=f"no TensorRT here: {tensorrt_missing()}")
def test_tensorrt_build_only_profiles_follow_the_case_batch(pytester, models):
    root = model_project(
        pytester,
        models,
        "suite: trt\nmodels:\n  - {name: gpt2, path: gpt2.onnx, precisions: [fp32]}\n"
        "  - {name: cnn8, path: cnn8.onnx}\n"
        "precisions: [fp32, fp16, int8]\nbatch_sizes: [1, 4]\nshapes: {s8: {seq: 8}}\ncalibration: {samples: 4}\n",
    )
    outcome = pytester.runpytest_subprocess(
        "-p", "harness.pytest_plugin", "--backend", "tensorrt", "--build-only", "--suite", str(root / "suite.yaml"),
        *isolated_args(root), "--no-reports",
    )  # fmt: skip
    outcome.assert_outcomes(passed=8)
    found = cases(root)
    for case_id, case in found.items():
        batch = case["params"]["batch_size"]
        (profile,) = case["build"]["config"]["profiles"]
        for name, (low, opt, high) in profile.items():
            assert (low[0], opt[0], high[0]) == (1, batch, 4), (case_id, name)
        assert next(iter(case["inputs"].values()))["shape"][0] == batch
