"""Model preparation: batch rewriting and input generation from the ONNX signature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness.core.errors import HarnessError
from harness.models.batch import make_batch_dynamic
from harness.models.inputs import generate_inputs
from harness.models.sources import load_onnx, prepare, zoo_dir
from harness.suite.load import load_suite


def suite_for(tmp_path: Path, model_lines: str, extra: str = "") -> object:
    path = tmp_path / "suite.yaml"
    path.write_text(f"suite: s\nmodels:\n{model_lines}{extra}")
    return load_suite(path)


def flatten_model(path: Path, pinned: bool, by_constant_node: bool = False) -> None:
    """x[1,4] -> Reshape -> y. The shape [1, 2, 2] keeps the batch leading (an initializer or a Constant node: both are
    rewritten); the pinned shape [2, 2] folds the batch into the rows, so no other batch can run."""
    target = [2, 2] if pinned else [1, 2, 2]
    shape = numpy_helper.from_array(np.array(target, dtype=np.int64), "shape")
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"])]
    initializers = [shape]
    if by_constant_node:
        nodes.insert(0, helper.make_node("Constant", [], ["shape"], value=shape))
        initializers = []
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, target)],
        initializers,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_zoo_model_becomes_batch_dynamic_including_its_reshape(tmp_path):
    model, reason = make_batch_dynamic(load_onnx(zoo_dir() / "light_resnet50.onnx"))
    assert reason == "" and model is not None
    graph_input = next(i for i in model.graph.input if i.name == "gpu_0/data_0")
    assert graph_input.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert model.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"gpu_0/data_0": np.zeros((3, 3, 224, 224), np.float32)})
    assert out.shape == (3, 1000)


def test_prepare_caches_the_rewritten_model(tmp_path):
    suite = suite_for(tmp_path, "  - name: sq\n    onnx_zoo: light_squeezenet\n")
    first = prepare(suite.models[0], tmp_path / "cache")
    assert first.path.parent == tmp_path / "cache" / "models" and first.fixed_batch is None
    stamp = first.path.stat().st_mtime_ns
    second = prepare(suite.models[0], tmp_path / "cache")
    assert second.path == first.path and second.path.stat().st_mtime_ns == stamp
    assert second.sha256 == first.sha256


def test_reshape_shapes_follow_the_batch_and_a_graph_that_folds_it_stays_pinned(tmp_path):
    flatten_model(tmp_path / "ok.onnx", pinned=False)
    flatten_model(tmp_path / "const.onnx", pinned=False, by_constant_node=True)
    flatten_model(tmp_path / "pinned.onnx", pinned=True)
    suite = suite_for(
        tmp_path,
        "  - name: ok\n    path: ok.onnx\n  - name: const\n    path: const.onnx\n"
        "  - name: pinned\n    path: pinned.onnx\n",
        "batch_sizes: [1, 2]\n",
    )
    ok, const, pinned = (prepare(m, tmp_path / "cache") for m in suite.models)
    assert ok.fixed_batch is None and const.fixed_batch is None
    assert pinned.fixed_batch == 1 and "at batch 2 the rewritten graph fails" in pinned.batch_note
    cases = {c.id: c for c in suite.cases()}
    assert generate_inputs(pinned, cases["pinned-fp32-b1"])["x"].shape == (1, 4)
    with pytest.raises(HarnessError, match=r"runs only at batch 1 .*set batch_sizes: \[1\] for models\[2\]"):
        generate_inputs(pinned, cases["pinned-fp32-b2"])
    assert generate_inputs(ok, cases["ok-fp32-b2"])["x"].shape == (2, 4)
    import onnxruntime as ort

    for model in (ok, const):
        session = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
        (y,) = session.run(None, {"x": np.arange(12, dtype=np.float32).reshape(3, 4)})
        assert y.shape == (3, 2, 2) and y[2, 1, 1] == 11


def test_inputs_are_deterministic_typed_and_follow_overrides(tmp_path):
    suite = suite_for(
        tmp_path,
        "  - name: sq\n    onnx_zoo: light_squeezenet\n    inputs: {data_0: {range: [-1, 1]}}\n",
        "batch_sizes: [2]\n",
    )
    model = prepare(suite.models[0], tmp_path / "cache")
    case = suite.cases()[0]
    a, b = generate_inputs(model, case), generate_inputs(model, case)
    assert a["data_0"].shape == (2, 3, 224, 224) and a["data_0"].dtype == np.float32
    assert np.array_equal(a["data_0"], b["data_0"])
    assert a["data_0"].min() >= -1 and a["data_0"].max() < 1 and a["data_0"].min() < 0


def test_unknown_input_name_and_unsized_dynamic_dim_are_clear_errors(tmp_path):
    suite = suite_for(tmp_path, "  - name: sq\n    onnx_zoo: light_squeezenet\n    inputs: {image: {range: [0, 1]}}\n")
    model = prepare(suite.models[0], tmp_path / "cache")
    with pytest.raises(HarnessError, match="the model's inputs are \\['data_0'\\]"):
        generate_inputs(model, suite.cases()[0])

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, ["batch", "seq"])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "seq.onnx"))
    suite = suite_for(tmp_path, "  - name: tok\n    path: seq.onnx\n")
    model = prepare(suite.models[0], tmp_path / "cache")
    with pytest.raises(HarnessError, match="dynamic dimension 'seq'"):
        generate_inputs(model, suite.cases()[0])
    sized = suite_for(tmp_path, "  - name: tok\n    path: seq.onnx\n", "shapes: {s16: {seq: 16}}\n")
    feeds = generate_inputs(prepare(sized.models[0], tmp_path / "cache"), sized.cases()[0])
    assert feeds["x"].shape == (1, 16) and feeds["x"].dtype == np.int64


def test_damaged_onnx_file_is_a_clear_error(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage-not-protobuf" * 3)
    suite = suite_for(tmp_path, "  - name: bad\n    path: bad.onnx\n")
    with pytest.raises(HarnessError, match="not a readable ONNX model"):
        prepare(suite.models[0], tmp_path / "cache")
