"""Meaningful weights for models whose weights are constant placeholders (the onnx wheel's "light" zoo).

The light zoo models carry real architectures, but every weight tensor is made by ``ConstantOfShape`` with one value
(0.02). Their outputs are degenerate (every class gets the same logit), so accuracy metrics, top-1 agreement and
calibration mean nothing on them. ``weights: random`` replaces each constant-filled weight with seeded random values
and then rescales the network on sample inputs so every layer's output is centred with unit variance: the
data-dependent initialisation of Krähenbühl et al., "Data-dependent Initializations of Convolutional Neural Networks"
(ICLR 2016), in the spirit of LSUV (Mishkin & Matas, "All you need is a good init", ICLR 2016). Without the rescale a
deep ReLU network either saturates its softmax (ResNet-50 gives one class for every input) or flattens it
(SqueezeNet's top classes differ in the fifth digit), and neither says anything about numerical accuracy.

The result is deterministic for a given model, seed and sample inputs; it is not a trained network, but its outputs
differ between inputs and between classes the way a trained classifier's do, which is what the accuracy checks need.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

# (op type, input index) -> role of a constant-filled tensor fed there
_WEIGHT = {("Conv", 1), ("ConvTranspose", 1), ("Gemm", 1), ("MatMul", 1)}
_BIAS = {("Conv", 2), ("ConvTranspose", 2), ("Gemm", 2)}
_BN = "BatchNormalization"
_LOGIT_STD = 2.0  # spread given to the last weighted layer's output (a trained ImageNet classifier's logits: 2-3)


def constant_weights(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every float weight tensor that holds one value repeated (ConstantOfShape or initializer)."""
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    found: dict[str, tuple[int, ...]] = {}
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input and node.input[0] in inits:
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is None or value.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
                continue
            found[node.output[0]] = tuple(int(d) for d in numpy_helper.to_array(inits[node.input[0]]).tolist())
    consumed = _consumers(graph)
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT or init.name in found:
            continue
        roles = {(n.op_type, k) for n, k in consumed.get(init.name, [])}
        if not roles or not all(r in _WEIGHT or r in _BIAS or r[0] == _BN for r in roles):
            continue
        array = numpy_helper.to_array(init)
        if array.size > 1 and np.all(array == array.flat[0]):
            found[init.name] = tuple(array.shape)
    return found


def randomize_weights(
    model: onnx.ModelProto, seed: int, feeds: dict[str, np.ndarray]
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Return (model with seeded random weights, rescaled on ``feeds``; facts to record).

    Only constant-filled tensors are replaced; real weights are kept. Raises ValueError when none is constant.
    """
    model = copy.deepcopy(model)
    graph = model.graph
    targets = constant_weights(model)
    if not targets:
        raise ValueError("the model has no constant-filled weights to replace")
    consumers = _consumers(graph)
    rng = np.random.default_rng(seed)
    values: dict[str, np.ndarray] = {}
    for name, shape in sorted(targets.items()):
        values[name] = _initial(rng, shape, consumers.get(name, []), consumers)
    # Replace the generators with initializers of the same names; drop the shape tensors only they used.
    generators = [n for n in graph.node if n.op_type == "ConstantOfShape" and n.output[0] in targets]
    for node in generators:
        graph.node.remove(node)
    still_used = {x for n in graph.node for x in n.input}
    dead = {n.input[0] for n in generators} - still_used
    kept = [i for i in graph.initializer if i.name not in dead and i.name not in targets]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    graph_inputs = [vi for vi in graph.input if vi.name not in dead]
    del graph.input[:]
    graph.input.extend(graph_inputs)
    for name in targets:
        graph.initializer.append(numpy_helper.from_array(values[name].astype(np.float32), name))
    # A real bias next to a replaced weight belongs to weights that no longer exist: the rescale may shift it.
    inits = {i.name: i for i in graph.initializer}
    for node in graph.node:
        bias = node.input[2] if len(node.input) > 2 else ""
        owned = len(consumers.get(bias, [])) == 1 and bias in inits and bias not in values
        if owned and node.input[1:2] and node.input[1] in targets:
            values[bias] = numpy_helper.to_array(inits[bias]).astype(np.float64)
    stats = _rescale(model, values, targets, feeds)
    for init in graph.initializer:
        if init.name in values:
            init.CopyFrom(numpy_helper.from_array(values[init.name].astype(np.float32), init.name))
    return model, {"replaced_tensors": len(targets), "seed": seed, **stats}


def _consumers(graph: onnx.GraphProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    out: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node:
        for k, name in enumerate(node.input):
            out.setdefault(name, []).append((node, k))
    return out


def _initial(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    users: list[tuple[onnx.NodeProto, int]],
    consumers_of: dict[str, list[tuple[onnx.NodeProto, int]]],
) -> np.ndarray:
    """He-normal weights, small biases, BatchNorm near identity; the rescale fixes the scale afterwards."""
    role = (users[0][0].op_type, users[0][1]) if users else ("", -1)
    if role in _WEIGHT:
        if role[0] in ("Conv", "ConvTranspose"):
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        elif role[0] == "Gemm":
            node = users[0][0]
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            fan_in = shape[1] if trans_b else shape[0]
        else:
            fan_in = shape[-2] if len(shape) >= 2 else shape[0]
        return rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape)
    if role[0] == _BN:
        bn = users[0][0]
        # A BN that ends a residual branch (its output goes into Add/Sum) starts small, as in "zero-init
        # residual" (Goyal et al., 2017): the blocks stay close to identity and the network well conditioned,
        # like a trained one; at full scale the errors of 16-bit or int8 arithmetic are amplified layer after layer.
        residual = any(c.op_type in ("Add", "Sum") for c, _ in consumers_of.get(bn.output[0], []))
        return {
            1: rng.uniform(0.1, 0.2, shape) if residual else rng.uniform(0.5, 1.5, shape),  # scale
            2: rng.normal(0.0, 0.1, shape),  # bias
            3: np.zeros(shape),  # running mean, set from data by the rescale
            4: np.ones(shape),  # running variance, set from data by the rescale
        }.get(role[1], rng.normal(0.0, 0.1, shape))
    return rng.normal(0.0, 0.1, shape)  # biases and anything else


def _rescale(
    model: onnx.ModelProto, values: dict[str, np.ndarray], targets: dict[str, tuple[int, ...]], feeds: dict[str, Any]
) -> dict[str, Any]:
    """Centre and scale every replaced layer's output on ``feeds``, layer by layer in topological order.

    A Conv/Gemm followed by a BatchNormalization whose statistics we own gives that BN its statistics from the data;
    any other replaced Conv is normalized per output channel, Gemm/MatMul and the last weighted layers over the whole
    tensor (so the classes keep different means and the softmax is neither flat nor saturated). Layers are visited in
    levels (a layer's level is one more than the deepest weighted layer upstream); every layer of a level is fixed
    from one run. The weights are fed as graph inputs, so one session serves every run.
    """
    import onnxruntime as ort

    graph = model.graph
    consumers = _consumers(graph)
    level_of: dict[str, int] = {}
    layers: list[tuple[onnx.NodeProto, onnx.NodeProto | None, int]] = []  # (weighted node, owned BN or None, level)
    for node in graph.node:
        level = max((level_of.get(x, 0) for x in node.input if x not in values), default=0)
        weighted = node.op_type in ("Conv", "Gemm", "MatMul") and len(node.input) > 1 and node.input[1] in targets
        if weighted:
            level += 1
            after = consumers.get(node.output[0], [])
            bn = after[0][0] if len(after) == 1 and after[0][0].op_type == _BN and after[0][1] == 0 else None
            if bn is not None and not (bn.input[3] in values and bn.input[4] in values):
                bn = None
            layers.append((node, bn, level))
        for out in node.output:
            level_of[out] = level
    if not layers:
        return {"rescaled_layers": 0}
    last = max(level for _, _, level in layers)
    probe = copy.deepcopy(model)
    kept = [i for i in probe.graph.initializer if i.name not in values]
    del probe.graph.initializer[:]
    probe.graph.initializer.extend(kept)
    inputs = [vi for vi in probe.graph.input if vi.name not in values]
    del probe.graph.input[:]
    probe.graph.input.extend(inputs)
    for name, array in values.items():
        probe.graph.input.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, array.shape))
    existing = {o.name for o in probe.graph.output}
    for node, _, _ in layers:
        if node.output[0] not in existing:
            probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(node.output[0]))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    for level in range(1, last + 1):
        batch = [(node, bn) for node, bn, lv in layers if lv == level]
        names = [node.output[0] for node, _ in batch]
        run_feeds = {**feeds, **{k: v.astype(np.float32) for k, v in values.items()}}
        outs = session.run(names, run_feeds)
        for (node, bn), y in zip(batch, outs, strict=True):
            y = y.astype(np.float64)
            if node.op_type == "Conv" and (bn is not None or level < last):
                axes = tuple(i for i in range(y.ndim) if i != 1)
                mean, std = y.mean(axis=axes), y.std(axis=axes)
            else:
                channels = y.shape[1] if node.op_type == "Conv" else y.shape[-1]
                mean, std = np.full(channels, y.mean()), np.full(channels, y.std())
            std = np.maximum(std, 1e-3)  # a dead channel stays dead rather than being blown up
            if level == last and bn is None:
                std = std / _LOGIT_STD  # the classifier's spread: softmax peaked like a trained model's, not flat
            if bn is not None:
                values[bn.input[3]] = mean
                values[bn.input[4]] = std**2
            else:
                _apply_affine(node, values, mean, std)
    return {"rescaled_layers": len(layers), "rescale_runs": last}


def _apply_affine(node: onnx.NodeProto, values: dict[str, np.ndarray], mean: np.ndarray, std: np.ndarray) -> None:
    """y' = (y - mean) / std by scaling the weight along its output axis and shifting the bias (when we own it)."""
    w_name = node.input[1]
    w = values[w_name]
    if node.op_type == "Conv":
        values[w_name] = w / std.reshape((-1,) + (1,) * (w.ndim - 1))
    elif node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
        values[w_name] = w / std[:, None]
    else:
        values[w_name] = w / std[None, :]
    b_name = node.input[2] if len(node.input) > 2 else ""
    if b_name in values:
        values[b_name] = (values[b_name] - mean) / std
