"""What an ONNX graph says about its inputs, read before anything runs: which integer inputs index a table (and how
many rows it has), which inputs are masks, and which graph inputs feed a node.

A model exported from ``transformers`` takes ``input_ids`` (rows of a vocabulary), ``token_type_ids`` (2 rows),
``position_ids`` (rows of a position table) and ``attention_mask`` (0/1). Fed the same values, most of them fail inside
the runtime with an error that names a node. So the harness follows each integer input forward through the ops that
keep its values (Cast, Reshape, Unsqueeze, ...) to the Gathers that use it as indices, and bounds it by the smallest
table it indexes; the rows of a table come from its initializer, a Constant node or ONNX shape inference.

Old-IR models list every initializer as a graph input too; the real inputs are the graph inputs that no initializer
feeds (:func:`real_inputs`), each described by a :class:`TensorInfo`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import onnx
from onnx import helper, numpy_helper

# Ops whose output holds (a subset or a rearrangement of) the values of their data input: an index stays an index
# and a mask stays a mask through them. The number is the input that carries the values; None: every input.
VALUE_PRESERVING: dict[str, int | None] = {
    "Cast": 0,
    "CastLike": 0,
    "Identity": 0,
    "Reshape": 0,
    "Unsqueeze": 0,
    "Squeeze": 0,
    "Flatten": 0,
    "Expand": 0,
    "Transpose": 0,
    "Slice": 0,
    "Tile": 0,
    "Split": 0,
    "Gather": 0,  # as data: picks elements of the index tensor
    "Concat": None,
}
# Where a tensor used as a condition ends up: such an input is a mask.
BOOLEAN_CONSUMERS = {"Not": 0, "And": None, "Or": None, "Xor": None, "Where": 0}
MASK_NAME_PARTS = ("mask",)


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # numpy dtype name, e.g. "float32"
    shape: tuple[int | str | None, ...]  # int = fixed, str = named dynamic dim, None = unnamed dynamic dim


def real_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    """The graph inputs that no initializer feeds."""
    initializers = {init.name for init in graph.initializer}
    return [vi for vi in graph.input if vi.name not in initializers]


def tensor_info(value_info: onnx.ValueInfoProto) -> TensorInfo:
    tensor_type = value_info.type.tensor_type
    dims: list[int | str | None] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name if tensor_type.elem_type else "float32"
    if tensor_type.elem_type == onnx.TensorProto.BFLOAT16:
        dtype = "bfloat16"
    return TensorInfo(value_info.name, dtype, tuple(dims))


@dataclass(frozen=True)
class InputHint:
    """What the graph says about one input's values."""

    kind: str  # "index" (values are rows of a table) or "mask" (0/1)
    rows: int | None = None  # for "index": the rows of the smallest table indexed
    node: str = ""  # the Gather that indexes with it, or the node that makes it a condition
    why: str = ""  # for "mask": the reason (named like a mask, bool, used as a condition)


def input_hints(model: onnx.ModelProto, inputs: Iterable[str]) -> dict[str, InputHint]:
    """Per input name, an :class:`InputHint` where the graph constrains the input's values."""
    graph = model.graph
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = defaultdict(list)
    for node in graph.node:
        for slot, name in enumerate(node.input):
            if name:
                consumers[name].append((node, slot))
    shapes = _known_shapes(model)
    hints: dict[str, InputHint] = {}
    for name in inputs:
        tables: list[tuple[int, str]] = []
        condition = ""
        for node, slot in _reached(name, consumers):
            if node.op_type in ("Gather", "GatherElements") and slot == 1:
                rows = _rows(shapes.get(node.input[0]), _axis(node))
                if rows is not None:
                    tables.append((rows, node.name or node.output[0]))
            elif _is_condition(node, slot) and not condition:
                condition = node.name or node.output[0]
        if tables:
            rows, node_name = min(tables)
            hints[name] = InputHint("index", rows=rows, node=node_name)
        elif condition:
            hints[name] = InputHint("mask", node=condition, why=f"used as a condition by '{condition}'")
    return hints


def looks_like_mask(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in MASK_NAME_PARTS)


def inputs_feeding(model: onnx.ModelProto, node_name: str) -> list[str]:
    """The graph inputs that ``node_name`` depends on, in graph-input order (empty when the node is unknown)."""
    producers = {out: node for node in model.graph.node for out in node.output}
    target = next((n for n in model.graph.node if n.name == node_name), None)
    if target is None:
        return []
    seen: set[str] = set()
    stack = list(target.input)
    while stack:
        tensor = stack.pop()
        if tensor in seen or not tensor:
            continue
        seen.add(tensor)
        producer = producers.get(tensor)
        if producer is not None:
            stack.extend(producer.input)
    return [vi.name for vi in model.graph.input if vi.name in seen]


def _reached(start: str, consumers: dict[str, list[tuple[onnx.NodeProto, int]]]) -> list[tuple[onnx.NodeProto, int]]:
    """Every (node, input slot) that reads ``start`` or a value-preserving transform of it."""
    out: list[tuple[onnx.NodeProto, int]] = []
    seen = {start}
    frontier = [start]
    while frontier:
        tensor = frontier.pop()
        for node, slot in consumers.get(tensor, []):
            out.append((node, slot))
            carries = VALUE_PRESERVING.get(node.op_type, -1)
            if carries == -1 or (carries is not None and carries != slot):
                continue
            for produced in node.output:
                if produced and produced not in seen:
                    seen.add(produced)
                    frontier.append(produced)
    return out


def _is_condition(node: onnx.NodeProto, slot: int) -> bool:
    if node.op_type == "Cast":
        return any(a.name == "to" and a.i == onnx.TensorProto.BOOL for a in node.attribute)
    if node.op_type not in BOOLEAN_CONSUMERS:
        return False
    wanted = BOOLEAN_CONSUMERS[node.op_type]
    return wanted is None or wanted == slot


def _axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 0)


def _rows(shape: tuple[int | None, ...] | None, axis: int) -> int | None:
    if not shape or not -len(shape) <= axis < len(shape):
        return None
    rows = shape[axis]
    return rows if rows else None


def _known_shapes(model: onnx.ModelProto) -> dict[str, tuple[int | None, ...]]:
    """Tensor name -> shape (None for unknown dims) from initializers, Constant nodes and shape inference."""
    shapes: dict[str, tuple[int | None, ...]] = {}
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shape inference gives up on some custom ops; the initializers still say a lot
        inferred = model
    for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    for init in model.graph.initializer:
        shapes[init.name] = tuple(int(d) for d in init.dims)
    for node in model.graph.node:
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                shapes[node.output[0]] = tuple(numpy_helper.to_array(value).shape)
    return shapes
