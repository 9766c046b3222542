"""Precision recipes: the typed graphs they make (dtypes, Q/DQ placement, IO kept fp32), their cache, calibration
data loading, random weights for placeholder-weight models, and the suite keys that configure them."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper

from harness.core.errors import HarnessError, SuiteError
from harness.models.graph import real_inputs
from harness.models.sources import load_onnx, prepare
from harness.recipes import typed_model
from harness.recipes.calibration import generated_calibration, load_calibration
from harness.recipes.weights import constant_weights
from harness.run import precision
from harness.suite.load import load_suite

SUITE = """
suite: recipes
models:
  - name: squeezenet
    onnx_zoo: light_squeezenet
    weights: random
precisions: [fp32, fp16, int8]
batch_sizes: [2]
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("suite")
    (folder / "suite.yaml").write_text(SUITE)
    return load_suite(folder / "suite.yaml").cases()[0]


@pytest.fixture(scope="module")
def prepared(case, cache):
    return precision.with_weights(prepare(case.model, cache), case, cache)


@pytest.fixture(scope="module")
def calibration(prepared, case):
    feeds, _ = precision.calibration_for(dataclasses.replace(case, precision="int8"), prepared)
    return feeds


def _run(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _feeds(batch: int = 2, seed: int = 1) -> dict[str, np.ndarray]:
    return {"data_0": np.random.default_rng(seed).uniform(0, 1, (batch, 3, 224, 224)).astype(np.float32)}


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output}


def _io_types(model: onnx.ModelProto) -> set[int]:
    return {vi.type.tensor_type.elem_type for vi in [*model.graph.input, *model.graph.output]}


# -- weights: random ---------------------------------------------------------------------------------------------
def test_random_weights_replace_the_placeholders_and_give_meaningful_outputs(prepared, case, cache):
    source = load_onnx(prepare(case.model, cache).path)
    assert len(constant_weights(source)) == 39  # every conv weight of the light zoo squeezenet is ConstantOfShape
    model = load_onnx(prepared.path)
    assert not [n for n in model.graph.node if n.op_type == "ConstantOfShape"]
    assert not constant_weights(model)
    assert [i.name for i in real_inputs(model.graph)] == ["data_0"]
    out = _run(prepared.path, _feeds(4))
    placeholder = _run(prepare(case.model, cache).path, _feeds(4))
    # Placeholders: near-identical scores for every class. Random weights: a clear winner, different per input.
    assert np.ptp(placeholder, axis=1).max() < 0.02 * placeholder.max()
    assert (out.max(axis=1) > 5 * out.mean(axis=1)).all()
    assert np.abs(out[0] - out[1]).max() > 1e-3
    assert "random:0" in prepared.notes


def test_random_weights_are_deterministic_and_cached(prepared, case, cache, tmp_path):
    again = precision.with_weights(prepare(case.model, tmp_path), case, tmp_path)
    assert again.sha256 == prepared.sha256  # the same seed and probe inputs give the same bytes
    other = dataclasses.replace(case, model=dataclasses.replace(case.model, weights="random:7"))
    seeded = precision.with_weights(prepare(case.model, tmp_path), other, tmp_path)
    assert seeded.sha256 != prepared.sha256
    assert len(list((tmp_path / "models").glob("*-random*.onnx"))) == 2


def test_random_weights_refuse_a_model_without_placeholders(prepared, case, cache):
    real = dataclasses.replace(prepared, sha256="x" * 64)  # already random: nothing constant left to replace
    with pytest.raises(HarnessError, match="no constant-filled weights"):
        precision.with_weights(real, case, cache / "other")


# -- fp16 / bf16 -------------------------------------------------------------------------------------------------
def test_fp16_converts_weights_keeps_io_and_sensitive_ops_fp32(prepared, cache):
    typed = typed_model(prepared, "fp16", {}, cache)
    model = onnx.load(str(typed.path))
    conv_weights = {n.input[1] for n in model.graph.node if n.op_type == "Conv"}
    types = {i.name: i.data_type for i in model.graph.initializer}
    assert conv_weights and all(types[w] == TensorProto.FLOAT16 for w in conv_weights)
    assert _io_types(model) == {TensorProto.FLOAT}
    softmax = next(n for n in model.graph.node if n.op_type == "Softmax")
    feeder = _producers(model)[softmax.input[0]]
    assert feeder.op_type == "Cast" and feeder.attribute[0].i == TensorProto.FLOAT  # softmax computes in fp32
    assert typed.size_bytes < 0.6 * prepared.path.stat().st_size
    ref, out = _run(prepared.path, _feeds()), _run(typed.path, _feeds())
    assert out.dtype == np.float32 and np.abs(out - ref).max() < 5e-3


def test_fp16_options_keep_io_types_false_and_block_ops(prepared, cache):
    typed = typed_model(prepared, "fp16", {"keep_io_types": False, "block_ops": []}, cache)
    model = onnx.load(str(typed.path))
    assert _io_types(model) == {TensorProto.FLOAT16}
    assert not [n for n in model.graph.node if n.op_type == "Cast"]  # nothing blocked: no casts at all


def test_bf16_retypes_the_fp16_graph_and_rounds_weights_from_fp32(prepared, cache):
    typed = typed_model(prepared, "bf16", {}, cache)
    model = onnx.load(str(typed.path))
    source = {i.name: numpy_helper.to_array(i) for i in load_onnx(prepared.path).graph.initializer}
    elem_types = Counter(i.data_type for i in model.graph.initializer)
    assert elem_types[TensorProto.BFLOAT16] >= 26 and TensorProto.FLOAT16 not in elem_types
    assert _io_types(model) == {TensorProto.FLOAT}
    casts = {a.i for n in model.graph.node if n.op_type == "Cast" for a in n.attribute if a.name == "to"}
    assert casts == {TensorProto.BFLOAT16, TensorProto.FLOAT}
    weight = next(i for i in model.graph.initializer if i.name == "conv1_w_0")
    stored = np.frombuffer(weight.raw_data, dtype=ml_dtypes.bfloat16).reshape(weight.dims)
    assert np.array_equal(stored, source["conv1_w_0"].astype(ml_dtypes.bfloat16))
    onnx.checker.check_model(model)


def _shared_by_two_blocked_ops() -> onnx.ModelProto:
    """x -> MatMul -> h, and h read by two ops the fp16 recipe keeps fp32 (Softmax, Exp), as a BERT layer's residual
    is read by its LayerNorm and by the next Add."""
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32) * 0.5, "w")
    nodes = [
        onnx.helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
        onnx.helper.make_node("Softmax", ["h"], ["a"], name="soft", axis=-1),
        onnx.helper.make_node("Exp", ["h"], ["b"], name="exp"),
        onnx.helper.make_node("Add", ["a", "b"], ["y"], name="add"),
    ]
    graph = onnx.helper.make_graph(
        nodes,
        "shared",
        [onnx.helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [onnx.helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [w],
    )
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


def test_fp16_of_a_tensor_read_by_two_blocked_ops_is_a_valid_model():
    from harness.recipes.floats import to_float16

    model = to_float16(_shared_by_two_blocked_ops(), {})
    onnx.checker.check_model(model, full_check=True)
    names = [n.name for n in model.graph.node]
    assert len(names) == len(set(names))
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    ref = ort.InferenceSession(_shared_by_two_blocked_ops().SerializeToString()).run(None, {"x": x})[0]
    out = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    assert np.abs(out - ref).max() < 5e-3


def test_repeated_casts_of_older_converters_become_one():
    """What onnxruntime-gpu 1.31's converter makes of that graph: one Cast per blocked reader, alike in node name and
    output; an invalid model until all but one are dropped."""
    from harness.recipes.floats import without_repeated_casts

    model = _shared_by_two_blocked_ops()
    cast = onnx.helper.make_node("Cast", ["h"], ["h_cast"], name="h_cast_node", to=TensorProto.FLOAT)
    other = onnx.helper.make_node("Cast", ["h"], ["h_cast16"], name="h_cast16_node", to=TensorProto.FLOAT16)
    mm, soft, exp, add = model.graph.node
    soft.input[0] = exp.input[0] = "h_cast"
    del model.graph.node[:]
    model.graph.node.extend([mm, cast, soft, onnx.helper.make_node("Cast", ["h"], ["h_cast"], name="h_cast_node",
                             to=TensorProto.FLOAT), exp, other, add])  # fmt: skip
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model, full_check=True)
    fixed = without_repeated_casts(model)
    assert [n.name for n in fixed.graph.node] == ["mm", "h_cast_node", "soft", "exp", "h_cast16_node", "add"]
    onnx.checker.check_model(fixed, full_check=True)


# -- int8 / fp8 --------------------------------------------------------------------------------------------------
def _qdq_facts(model: onnx.ModelProto) -> dict[str, object]:
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    init_types = {i.name: i.data_type for i in model.graph.initializer}
    producers = _producers(model)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    weights = [producers[c.input[1]] for c in convs]
    return {
        "inits": inits,
        "types": init_types,
        "producers": producers,
        "convs": convs,
        "weight_dq": weights,
    }


def test_int8_is_symmetric_per_channel_qdq_with_float_bias(prepared, cache, calibration):
    typed = typed_model(prepared, "int8", {}, cache, calibration)
    model = onnx.load(str(typed.path))
    facts = _qdq_facts(model)
    inits, types, producers = facts["inits"], facts["types"], facts["producers"]
    for conv, dq in zip(facts["convs"], facts["weight_dq"], strict=True):
        assert dq.op_type == "DequantizeLinear"
        weight, scale, zero = dq.input
        assert types[weight] == TensorProto.INT8
        out_channels = inits[weight].shape[0]
        assert inits[scale].shape == (out_channels,)  # per output channel
        assert not inits[zero].any()  # symmetric
        assert producers[conv.input[0]].op_type == "DequantizeLinear"  # activation Q/DQ in front of the conv
        assert types[conv.input[2]] == TensorProto.FLOAT  # bias stays float: no int32 bias DequantizeLinear
    quantizers = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert quantizers and all(not inits[n.input[2]].any() for n in quantizers)  # activations symmetric too
    assert all(types[n.input[2]] == TensorProto.INT8 for n in quantizers)
    assert TensorProto.INT32 not in types.values()
    softmax = next(n for n in model.graph.node if n.op_type == "Softmax")
    assert producers[softmax.input[0]].op_type != "DequantizeLinear"  # the sensitive op stays float
    assert _io_types(model) == {TensorProto.FLOAT}
    assert typed.recipe["calibration"] == {"source": "generated", "samples": 16, "method": "minmax"}
    assert any("only indicative" in w for w in typed.warnings)
    ref, out = _run(prepared.path, _feeds()), _run(typed.path, _feeds())
    cosine = float(np.dot(ref.ravel(), out.ravel()) / np.linalg.norm(ref) / np.linalg.norm(out))
    assert cosine > 0.95


def test_int8_without_exclusions_quantizes_the_softmax(prepared, cache, calibration):
    typed = typed_model(prepared, "int8", {"exclude_ops": []}, cache, calibration)
    model = onnx.load(str(typed.path))
    softmax = next(n for n in model.graph.node if n.op_type == "Softmax")
    assert _producers(model)[softmax.input[0]].op_type == "DequantizeLinear"
    readers = [n.op_type for n in model.graph.node if softmax.output[0] in n.input]
    assert readers == ["QuantizeLinear"]  # its probabilities are rounded to int8 too


def test_fp8_makes_e4m3_qdq(prepared, cache, calibration):
    typed = typed_model(prepared, "fp8", {}, cache, calibration)
    model = onnx.load(str(typed.path))
    facts = _qdq_facts(model)
    assert all(facts["types"][dq.input[0]] == TensorProto.FLOAT8E4M3FN for dq in facts["weight_dq"])
    assert typed.recipe["calibration"]["method"] == "distribution"
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 19


def test_recipes_are_cached_by_model_options_and_calibration(prepared, cache, calibration, tmp_path):
    first = typed_model(prepared, "int8", {}, tmp_path, calibration)
    again = typed_model(prepared, "int8", {}, tmp_path, calibration)
    assert not first.cache_hit and again.cache_hit
    assert again.sha256 == first.sha256 and again.conversion_time_ms == first.conversion_time_ms
    assert first.conversion_time_ms > 0 and first.size_bytes == first.path.stat().st_size
    other_options = typed_model(prepared, "int8", {"per_channel": False}, tmp_path, calibration)
    other_data = generated_calibration({k: v[:4] for k, v in calibration.samples.items()})
    other_calibration = typed_model(prepared, "int8", {}, tmp_path, other_data)
    assert len({first.path, other_options.path, other_calibration.path}) == 3
    assert sorted(p.suffix for p in (tmp_path / "recipes").iterdir()) == [".json"] * 3 + [".onnx"] * 3
    first.path.write_bytes(b"damaged")  # a damaged variant is made again, never used
    remade = typed_model(prepared, "int8", {}, tmp_path, calibration)
    assert not remade.cache_hit and remade.sha256 == first.sha256
    as_is = typed_model(prepared, "fp32", {}, tmp_path)
    assert as_is.path == prepared.path and as_is.conversion_time_ms == 0.0


def test_quantized_recipes_need_calibration(prepared, cache):
    with pytest.raises(HarnessError, match="needs calibration data"):
        typed_model(prepared, "int8", {}, cache)


# -- calibration data --------------------------------------------------------------------------------------------
SHAPES = {"x": ("batch", 3, 8, 8), "ids": ("batch", 5)}


def test_calibration_from_an_npz_file(tmp_path):
    x = np.random.default_rng(0).random((6, 3, 8, 8), dtype=np.float32)
    np.savez(tmp_path / "calib.npz", x=x, ids=np.arange(30).reshape(6, 5))
    data = load_calibration(tmp_path / "calib.npz", SHAPES, samples=4)
    assert data.count == 4 and data.source.endswith("calib.npz")
    assert data.batches()[1]["x"].shape == (1, 3, 8, 8) and np.array_equal(data.batches()[1]["x"][0], x[1])
    assert data.sha256 == load_calibration(tmp_path / "calib.npz", SHAPES, samples=4).sha256
    assert data.sha256 != load_calibration(tmp_path / "calib.npz", SHAPES, samples=5).sha256
    assert not data.warnings
    fewer = load_calibration(tmp_path / "calib.npz", SHAPES, samples=10)
    assert fewer.count == 6 and "fewer than the 10" in fewer.warnings[0]


def test_calibration_from_folders_of_npy_and_npz(tmp_path):
    npy = tmp_path / "npy"
    npy.mkdir()
    np.save(npy / "x.npy", np.zeros((3, 3, 8, 8), np.float32))
    np.save(npy / "ids.npy", np.zeros((3, 5), np.int64))
    assert load_calibration(npy, SHAPES, samples=8).count == 3
    npz = tmp_path / "npz"
    npz.mkdir()
    for i in range(4):  # one sample set per file, without the samples axis
        np.savez(npz / f"{i:03d}.npz", x=np.full((3, 8, 8), i, np.float32), ids=np.full(5, i))
    data = load_calibration(npz, SHAPES, samples=8)
    assert data.count == 4 and [b["x"][0, 0, 0, 0] for b in data.batches()] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: np.savez(p / "c.npz", x=np.zeros((2, 3, 8, 8))), r"no samples for the model inputs \['ids'\]"),
        (lambda p: np.savez(p / "c.npz", x=np.zeros((2, 3, 9, 8)), ids=np.zeros((2, 5))), r"shape \(2, 3, 9, 8\)"),
        (lambda p: np.savez(p / "c.npz", x=np.zeros((2, 3, 8, 8)), ids=np.zeros((3, 5))), "different sample counts"),
    ],
)
def test_calibration_data_mistakes_are_one_line_errors(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(HarnessError, match=message):
        load_calibration(tmp_path / "c.npz", SHAPES, samples=8)
    with pytest.raises(HarnessError, match="does not exist"):
        load_calibration(tmp_path / "missing.npz", SHAPES, samples=8)


# -- suite keys --------------------------------------------------------------------------------------------------
def _suite(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(
        "suite: s\nmodels:\n  - {name: m, onnx_zoo: light_squeezenet, weights: random:3}\n"
        "precisions: [fp32, int8]\n" + extra
    )
    return path


def test_suite_keys_reach_the_model(tmp_path):
    np.savez(tmp_path / "calib.npz", data_0=np.zeros((2, 3, 224, 224), np.float32))
    suite = load_suite(
        _suite(
            tmp_path,
            "calibration: {data: calib.npz, samples: 2, method: entropy}\n"
            "recipes: {int8: {per_channel: false}}\naccuracy: {int8: {min_cosine: 0.9}}\n"
            "reference_backend: onnxruntime\n",
        )
    )
    model = suite.models[0]
    assert model.weights == "random:3"
    assert model.calibration.data == (tmp_path / "calib.npz").resolve() and model.calibration.method == "entropy"
    assert model.recipes == {"int8": {"per_channel": False}}
    assert model.accuracy == {"int8": {"min_cosine": 0.9}}
    assert suite.reference_backend == "onnxruntime"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("calibration: {method: minmaxx}\n", "calibration.method: unknown calibration method 'minmaxx'; did you mean"),
        ("calibration: {data: nope.npz}\n", "calibration.data: 'nope.npz' not found"),
        ("calibration: {samples: 0}\n", "calibration.samples: expected a positive integer"),
        ("recipes: {int8: {per_chanel: true}}\n", "recipes.int8.per_chanel: unknown key; did you mean 'per_channel'"),
        ("recipes: {fp32: {}}\n", "recipes.fp32: no recipe options for this precision"),
        ("recipes: {fp16: {keep_io_types: 1}}\n", "recipes.fp16.keep_io_types: wrong type int"),
        ("accuracy: {int8: {min_cosin: 0.9}}\n", "accuracy.int8.min_cosin: unknown tolerance; did you mean"),
        ("accuracy: {int9: {}}\n", "accuracy.int9: unknown precision; did you mean 'int8'"),
    ],
)
def test_suite_key_mistakes_name_the_key(tmp_path, extra, message):
    with pytest.raises(SuiteError, match=message.replace("(", r"\(")):
        load_suite(_suite(tmp_path, extra))


def test_weights_key_is_checked(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text("suite: s\nmodels:\n  - {name: m, onnx_zoo: light_squeezenet, weights: gaussian}\n")
    with pytest.raises(SuiteError, match=r"models\[0\].weights: expected 'random', 'random:SEED' or 'as-is'"):
        load_suite(path)
