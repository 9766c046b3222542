"""Inputs come from what the graph says: indices stay inside the table they index, masks are 0/1, suite ranges are
inclusive, every case records what it was fed, and an input the runtime still rejects is named with its range and the
suite key that changes it. End to end on real-shaped models exported from ``transformers`` and plain PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import real_models
from onnx import TensorProto, helper, numpy_helper
from suite_runner import cases, model_project, run_suite

from harness.models.inputs import generate_inputs, plan_inputs
from harness.models.sources import prepare
from harness.suite.load import load_suite

pytest_plugins = ["pytester"]

FAST = ["--warmup-ms", "5", "--min-duration-ms", "20", "--min-iterations", "3", "--trials", "1", "--no-reports"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("real-models")
    real_models.bert(folder / "bert.onnx")
    real_models.gpt2(folder / "gpt2.onnx")
    real_models.resnet(folder / "resnet.onnx")
    real_models.multi(folder / "multi.onnx")
    return folder


REAL_SUITE = """suite: real
models:
  - {name: bert, path: bert.onnx}
  - {name: gpt2, path: gpt2.onnx}
  - {name: resnet, path: resnet.onnx}
  - {name: multi, path: multi.onnx}
precisions: [fp32, fp16, int8]
batch_sizes: [2]
shapes: {s16: {seq: 16}}
calibration: {samples: 4}
# Inputs are the subject here, not how well random weights survive quantization.
accuracy:
  fp16: {max_mismatch: 1.0, min_cosine: 0.0, min_top1: 0.0}
  int8: {max_mismatch: 1.0, min_cosine: 0.0, min_top1: 0.0}
backends: {onnxruntime: {intra_op_threads: 1}}
"""


def test_real_models_run_at_every_precision_without_a_hand_written_range(pytester, models):
    root = model_project(pytester, models, REAL_SUITE)
    outcome = run_suite(pytester, *FAST)
    outcome.assert_outcomes(passed=12)
    found = cases(root)
    assert not [c["message"] for c in found.values() if c["status"] == "error"]
    for precision in ("fp32", "fp16", "int8"):
        bert = found[f"bert-{precision}-b2-s16"]["inputs"]
        assert bert["input_ids"]["range"] == [0, real_models.BERT_VOCAB - 1]
        assert "word_embeddings" in bert["input_ids"]["rule"] and "100 rows" in bert["input_ids"]["rule"]
        assert bert["token_type_ids"]["range"] == [0, 1] and "2 rows" in bert["token_type_ids"]["rule"]
        assert bert["position_ids"]["range"] == [0, real_models.POSITIONS - 1]
        assert bert["attention_mask"]["range"] == [0, 1] and bert["attention_mask"]["rule"].startswith("mask")
        assert bert["input_ids"]["shape"] == [2, 16] and bert["input_ids"]["dtype"] == "int64"
        gpt2 = found[f"gpt2-{precision}-b2-s16"]["inputs"]
        assert gpt2["input_ids"]["range"] == [0, real_models.GPT2_VOCAB - 1]
        assert gpt2["attention_mask"]["rule"].startswith("mask")
        multi = found[f"multi-{precision}-b2-s16"]["inputs"]
        assert multi["ids"]["range"] == [0, real_models.MULTI_ROWS - 1]
        assert multi["keep"] == {"shape": [2, 6], "dtype": "bool", "range": [0, 1], "rule": multi["keep"]["rule"]}
        assert multi["image"]["dtype"] == "float32" and multi["image"]["range"] == [0, 1]
        resnet = found[f"resnet-{precision}-b2-s16"]["inputs"]
        assert resnet["pixel_values"]["shape"] == [2, 3, 32, 32]


def test_a_suite_range_outside_the_table_names_the_input_its_range_and_the_key(pytester, models):
    too_wide = "{name: gpt2, path: gpt2.onnx, inputs: {input_ids: {range: [0, 500]}}}"
    suite = REAL_SUITE.replace("{name: gpt2, path: gpt2.onnx}", too_wide)
    suite = suite.replace("precisions: [fp32, fp16, int8]", "precisions: [fp32]")
    root = model_project(pytester, models, suite)
    outcome = run_suite(pytester, *FAST)
    outcome.assert_outcomes(passed=3, failed=1)
    case = cases(root)["gpt2-fp32-b2-s16"]
    assert case["status"] == "error"
    message = case["message"]
    assert "\n" not in message and "Traceback" not in outcome.stdout.str()
    assert "onnxruntime rejected the generated inputs" in message
    assert "indices element out of data bounds" in message
    assert "'input_ids' (int64[2, 16], values 0..500" in message
    assert "set models[1].inputs.input_ids.range: [low, high] (inclusive)" in message
    assert case["inputs"]["input_ids"]["range"] == [0, 500]  # what was fed is recorded even for a failed case
    assert cases(root)["bert-fp32-b2-s16"]["status"] == "passed"  # the next cases ran


def gather_chain(path: Path) -> Path:
    """ids -> Cast -> Unsqueeze -> Gather(axis=1) of a [4, 7] table, and ids -> Gather of a 30-row table: the
    smallest table wins, and an axis other than 0 counts that axis' size. ``pad_mask`` is a float mask."""
    small = numpy_helper.from_array(np.zeros((4, 7), np.float32), "small")
    large = numpy_helper.from_array(np.zeros((30, 2), np.float32), "large")
    axes = numpy_helper.from_array(np.array([-1], np.int64), "axes")
    nodes = [
        helper.make_node("Cast", ["ids"], ["ids32"], to=TensorProto.INT32),
        helper.make_node("Unsqueeze", ["ids32", "axes"], ["ids3"]),
        helper.make_node("Gather", ["small", "ids3"], ["a"], axis=1, name="by_column"),
        helper.make_node("Gather", ["large", "ids"], ["b"], name="by_row"),
        helper.make_node("Mul", ["b", "pad_mask"], ["c"]),
        helper.make_node("Gather", ["large", "other"], ["d"], name="other_rows"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 5]),
            helper.make_tensor_value_info("pad_mask", TensorProto.FLOAT, ["batch", 5, 1]),
            helper.make_tensor_value_info("other", TensorProto.INT64, ["batch", 5]),
            helper.make_tensor_value_info("count", TensorProto.INT64, ["batch", 1]),
        ],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("a", "c", "d")]
        + [helper.make_tensor_value_info("count", TensorProto.INT64, None)],
        [small, large, axes],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_gather_bounds_follow_value_preserving_ops_masks_and_inclusive_user_ranges(tmp_path):
    gather_chain(tmp_path / "g.onnx")
    (tmp_path / "suite.yaml").write_text(
        "suite: s\nmodels:\n  - name: g\n    path: g.onnx\n    inputs: {other: {range: [3, 4]}}\nbatch_sizes: [64]\n"
    )
    suite = load_suite(tmp_path / "suite.yaml")
    (case,) = suite.cases()
    model = prepare(suite.models[0], tmp_path / "cache")
    plans = plan_inputs(model, case)
    feeds = generate_inputs(model, case, plans)
    assert (plans["ids"].low, plans["ids"].high) == (0, 6) and "by_column" in plans["ids"].rule
    assert feeds["ids"].min() == 0 and feeds["ids"].max() == 6
    assert set(np.unique(feeds["other"])) == {3, 4}  # inclusive: the upper end is fed too
    assert "models[0].inputs.other.range" in plans["other"].rule
    mask = feeds["pad_mask"][..., 0]
    assert set(np.unique(mask)) == {0.0, 1.0} and mask.mean() > 0.5
    assert (np.diff(mask, axis=1) <= 0).all(), "each row: ones, then zeros"
    assert (mask[:, :3] == 1).all(), "at least half of every row is ones"
    assert (plans["count"].low, plans["count"].high) == (0, 99) and plans["count"].rule.startswith("default")
    record = plans["ids"].record()
    assert record == {"shape": [64, 5], "dtype": "int64", "range": [0, 6], "rule": plans["ids"].rule}
