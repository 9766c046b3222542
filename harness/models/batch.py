"""Making a fixed batch dynamic: an ONNX graph exported at one batch size, rewritten to take any.

An export at a fixed batch B (torch.onnx.export without dynamic_axes, the onnx zoo's batch-1 models) pins B in its
inputs and outputs and in shape constants; :func:`make_batch_dynamic` names the leading dimension ``batch``, computes
those constants from the input's batch instead, and keeps the rewrite only when ONNX Runtime shows it computes what
the original does. harness.models.sources caches the rewritten file.
"""

from __future__ import annotations

import copy
import zlib
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from harness.core.messages import condensed
from harness.models.graph import input_hints, real_inputs, tensor_info
from harness.models.values import InputPlan, graph_rule

BATCH_DIM = "batch"  # the name of the batch axis in a rewritten or exported graph
DYNAMIC_FORMAT = "2"  # bump when make_batch_dynamic changes what it writes, so cached rewrites are redone


def fixed_batch_of(model: onnx.ModelProto) -> int | None:
    """The fixed leading dimension of a graph whose inputs all have one (an export without a dynamic batch axis)."""
    leading = [tensor_info(vi).shape[0] for vi in real_inputs(model.graph) if tensor_info(vi).shape]
    if not leading or not all(isinstance(d, int) for d in leading):
        return None
    return int(leading[0])  # type: ignore[arg-type]


# Ops whose shape input may bake the exported batch in, and the index of that input.
SHAPE_INPUTS = {"Reshape": 1, "Expand": 1, "ConstantOfShape": 0, "Tile": 1}


def make_batch_dynamic(
    model: onnx.ModelProto, probe_dims: dict[str, int] | None = None
) -> tuple[onnx.ModelProto | None, str]:
    """Return (model with a symbolic leading ``batch`` dim, "") or (None, why it cannot be done).

    An export at a fixed batch B (torch.onnx.export without dynamic_axes, the onnx zoo's batch-1 models) pins B in
    its inputs and outputs, and in the shape constants of Reshape, Expand, Tile and ConstantOfShape (``[B, 2048]``,
    ``[B * seq, hidden]``). The inputs and the outputs that lead with B get a symbolic ``batch``; a Reshape of a
    batch-dependent tensor whose shape starts with B (or a multiple of it, B > 1), and for B > 1 an Expand, Tile or
    ConstantOfShape whose shape starts with B, get that shape computed from the first input's batch instead
    (``Concat(Shape(x)[0:1] * k, rest)``). The result must then prove itself in ONNX Runtime
    (:func:`_validate_dynamic`): the same outputs as the original at B, the right batch at another size, and every
    sample of a batch computed as if alone.
    """
    original = model
    model = copy.deepcopy(model)
    graph = model.graph
    inputs = [vi for vi in real_inputs(graph) if vi.type.tensor_type.shape.dim]
    fixed = {vi.type.tensor_type.shape.dim[0].dim_value for vi in inputs}
    if len(fixed) != 1 or 0 in fixed:
        return None, "the inputs disagree on their leading dimension, so it is not a batch dimension"
    old_batch = fixed.pop()
    batched_outputs = [o.name for o in graph.output if o.type.tensor_type.shape.dim[:1] and
                       o.type.tensor_type.shape.dim[0].dim_value == old_batch]  # fmt: skip
    for vi in [*inputs, *(o for o in graph.output if o.name in batched_outputs)]:
        dims = vi.type.tensor_type.shape.dim
        dims[0].Clear()
        dims[0].dim_param = BATCH_DIM
    del graph.value_info[:]  # stale intermediate shapes would contradict the new batch dim
    _compute_batch_constants(graph, inputs[0].name, old_batch)

    probe = copy.deepcopy(model)
    for out in probe.graph.output:
        out.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(probe, data_prop=True)
    except Exception as exc:
        return None, f"shape inference failed after making the batch dynamic ({condensed(exc)})"
    for out in inferred.graph.output:
        dims = out.type.tensor_type.shape.dim
        if out.name in batched_outputs and dims and dims[0].HasField("dim_value"):
            return (
                None,
                f"output '{out.name}' keeps a fixed leading dimension of {dims[0].dim_value}: the graph pins the batch",
            )
    problem = _validate_dynamic(model, original, old_batch, batched_outputs, probe_dims or {})
    if problem:
        return None, problem
    return model, ""


def _compute_batch_constants(graph: onnx.GraphProto, batch_input: str, old_batch: int) -> None:
    """Replace shape constants that hold the exported batch by ones computed from ``batch_input``'s batch."""
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                constants[node.output[0]] = numpy_helper.to_array(value)
    dependent = _input_dependent(graph)
    batch_vec = ""
    rewritten: list[onnx.NodeProto] = []
    for node in list(graph.node):
        slot = SHAPE_INPUTS.get(node.op_type)
        if slot is None or len(node.input) <= slot or node.input[slot] not in constants:
            continue
        if node.op_type == "Reshape" and any(a.name == "allowzero" and a.i for a in node.attribute):
            continue
        if node.op_type == "Reshape" and node.input[0] not in dependent:
            continue  # reshaping a weight: its leading dim is not the batch
        if node.op_type != "Reshape" and old_batch == 1:
            continue  # a leading 1 of a broadcast or a generated weight ([1, 1, 1000, 1024]) is no sign of the batch
        shape = constants[node.input[slot]]
        if shape.ndim != 1 or shape.size == 0 or shape.dtype != np.int64 or shape[0] <= 0:
            continue
        factor = (
            int(shape[0]) // old_batch if old_batch > 1 and shape[0] % old_batch == 0 else int(shape[0] == old_batch)
        )
        if factor == 0:
            continue
        if not batch_vec:
            batch_vec = _batch_vector(graph, batch_input)
        name = f"{node.name or node.output[0]}__dynbatch_shape"
        rewritten.extend(_dynamic_shape(name, batch_vec, factor, shape[1:]))
        node.input[slot] = name
    # The new nodes must come before their consumers: put them right after the batch vector.
    if rewritten:
        graph.node.extend(rewritten)
        _toposort(graph)


def _batch_vector(graph: onnx.GraphProto, batch_input: str) -> str:
    """``Shape(batch_input)[0:1]`` as an int64 [1] tensor (Gather with a 1-D index works at every opset)."""
    graph.initializer.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "dynbatch__index0"))
    graph.node.extend(
        [
            helper.make_node("Shape", [batch_input], ["dynbatch__shape"], name="dynbatch__Shape"),
            helper.make_node(
                "Gather", ["dynbatch__shape", "dynbatch__index0"], ["dynbatch__batch"], name="dynbatch__Gather", axis=0
            ),
        ]
    )
    return "dynbatch__batch"


def _dynamic_shape(name: str, batch_vec: str, factor: int, rest: np.ndarray) -> list[onnx.NodeProto]:
    nodes: list[onnx.NodeProto] = []
    leading = batch_vec
    if factor != 1:
        nodes.append(helper.make_node("Constant", [], [f"{name}_k"], value=numpy_helper.from_array(
            np.array([factor], dtype=np.int64))))  # fmt: skip
        nodes.append(helper.make_node("Mul", [batch_vec, f"{name}_k"], [f"{name}_lead"]))
        leading = f"{name}_lead"
    if rest.size == 0:
        nodes.append(helper.make_node("Identity", [leading], [name]))
        return nodes
    nodes.append(helper.make_node("Constant", [], [f"{name}_rest"], value=numpy_helper.from_array(
        rest.astype(np.int64))))  # fmt: skip
    nodes.append(helper.make_node("Concat", [leading, f"{name}_rest"], [name], axis=0))
    return nodes


def _input_dependent(graph: onnx.GraphProto) -> set[str]:
    """Tensors whose values depend on a graph input (so their leading dim may be the batch)."""
    dependent = {vi.name for vi in real_inputs(graph)}
    changed = True
    while changed:
        changed = False
        for node in graph.node:
            if any(i in dependent for i in node.input) and not all(o in dependent for o in node.output if o):
                dependent.update(o for o in node.output if o)
                changed = True
    return dependent


def _toposort(graph: onnx.GraphProto) -> None:
    """Order the nodes so every tensor is produced before it is read (depth-first, keeping the original order)."""
    producer = {out: i for i, node in enumerate(graph.node) for out in node.output if out}
    nodes = list(graph.node)
    done: set[int] = set()
    ordered: list[onnx.NodeProto] = []

    def visit(index: int) -> None:
        stack = [(index, False)]
        while stack:
            i, expanded = stack.pop()
            if i in done:
                continue
            if expanded:
                done.add(i)
                ordered.append(nodes[i])
                continue
            stack.append((i, True))
            stack.extend(
                (producer[t], False) for t in reversed(nodes[i].input) if t in producer and producer[t] not in done
            )

    for i in range(len(nodes)):
        visit(i)
    del graph.node[:]
    graph.node.extend(ordered)


def _validate_dynamic(
    model: onnx.ModelProto, original: onnx.ModelProto, old_batch: int, batched: list[str], dims: dict[str, int]
) -> str:
    """Run the rewrite in ONNX Runtime; "" when it holds, else why the batch stays fixed."""
    import onnxruntime as ort

    infos = [tensor_info(vi) for vi in real_inputs(model.graph)]
    if any(isinstance(d, str) and d != BATCH_DIM and d not in dims for i in infos for d in i.shape[1:]) or any(
        d is None for i in infos for d in i.shape[1:]
    ):
        return ""  # other dims are dynamic and unsized here: shape inference above is the check
    hints = input_hints(model, [i.name for i in infos])

    def feeds(batch: int, seed: int) -> dict[str, np.ndarray]:
        out = {}
        for info in infos:
            shape = tuple(
                batch if i == 0 else d if isinstance(d, int) else dims[str(d)] for i, d in enumerate(info.shape)
            )
            low, high, _, mask = graph_rule(info.name, info.dtype, hints.get(info.name))
            plan = InputPlan(info.name, shape, info.dtype, low, high, "", mask, seed + zlib.crc32(info.name.encode()))
            out[info.name] = plan.values()
        return out

    sessions: dict[int, Any] = {}

    def run(proto: onnx.ModelProto, given: dict[str, np.ndarray]) -> list[np.ndarray]:
        if id(proto) not in sessions:
            options = ort.SessionOptions()
            options.log_severity_level = 4  # a failure here is the answer, not news for the terminal
            # No graph optimizations: they fold the zoo's generated weights for longer than the runs take.
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            sessions[id(proto)] = ort.InferenceSession(
                proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        return [np.asarray(v) for v in sessions[id(proto)].run(None, given)]

    # At batch 1 the original's outputs double as row 0's "alone" outputs: four batch-1 runs in all (resnet50: ~2 s).
    other = 2 if old_batch != 2 else 3
    try:
        at_old = feeds(old_batch, 1)
        want = run(original, at_old)
        mixed = feeds(other, 2)
        if old_batch == 1:
            mixed = {k: np.concatenate([at_old[k], v[1:]]) for k, v in mixed.items()}
        else:
            got = run(model, at_old)
            changed = [o.name for o, a, b in zip(model.graph.output, want, got, strict=True) if not _close(a, b)]
            if changed:
                return f"output '{changed[0]}' changes when the batch is made dynamic"
        together = run(model, mixed)
        alone = [want if row == 0 and old_batch == 1 else run(model, {k: v[row : row + 1] for k, v in mixed.items()})
                 for row in range(other)]  # fmt: skip
    except Exception as exc:
        return f"at batch {other} the rewritten graph fails in onnxruntime ({condensed(exc, 200)})"
    for index, (name, out) in enumerate(zip([o.name for o in model.graph.output], together, strict=True)):
        if name not in batched:
            continue
        if out.shape[:1] != (other,):
            return f"output '{name}' has {out.shape[0] if out.ndim else 'no'} rows at batch {other}"
        for row in range(other):
            if not _close(out[row : row + 1], alone[row][index]):
                return f"output '{name}' of a sample depends on the other samples of its batch: the graph mixes them"
    return ""


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if not np.issubdtype(a.dtype, np.floating):
        return bool(np.array_equal(a, b))
    scale = float(np.nanmax(np.abs(a[np.isfinite(a)]))) if np.isfinite(a).any() else 1.0
    return bool(np.allclose(a, b, rtol=1e-3, atol=1e-4 * max(scale, 1.0), equal_nan=True))
