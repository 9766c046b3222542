"""Model sources and inputs: find the ONNX file, make its batch dimension dynamic, generate inputs from its graph.

Sources: an ONNX file next to the suite, a model from the ``onnx`` wheel's "light" zoo (real architectures with
generated weights, static batch 1, opset 9), or a PyTorch factory (``torch: package.module:factory``) that the harness
exports to ONNX once (cached) for the ONNX-based backends, while the torch backend runs the module itself. Old-IR
models list every initializer as a graph input too; the real inputs are the graph inputs that no initializer feeds.

Inputs are generated from what the graph says about them (:func:`plan_inputs`, :mod:`harness.models.graph`): indices
stay
inside the table they index, masks are 0/1, and the batch axis is always the case's batch size.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
import math
import os
import re
import sys
import warnings
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from harness.core.errors import CaseSkipped, HarnessError
from harness.core.fsio import atomic_write_bytes
from harness.models.graph import InputHint, input_hints, inputs_feeding, looks_like_mask
from harness.suite.schema import Case, InputSpec, ModelSpec

BATCH_DIM = "batch"
DYNAMIC_FORMAT = "2"  # bump when make_batch_dynamic changes what it writes, so cached rewrites are redone
DEFAULT_INT_RANGE = (0, 99)  # inclusive; integers that neither index a table nor look like a mask
DEFAULT_FLOAT_RANGE = (0.0, 1.0)  # uniform in [low, high)


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # numpy dtype name, e.g. "float32"
    shape: tuple[int | str | None, ...]  # int = fixed, str = named dynamic dim, None = unnamed dynamic dim


@dataclass(frozen=True)
class PreparedModel:
    """The ONNX file a backend builds from, with what the harness learned about it."""

    name: str
    path: Path
    sha256: str  # of the file at ``path``
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    fixed_batch: int | None = None  # the batch size the graph is pinned to when it could not be made dynamic
    batch_note: str = ""  # why the batch is fixed, shown in the error of a case at another batch size
    notes: tuple[str, ...] = field(default=())
    hints: dict[str, InputHint] = field(default_factory=dict)  # what the graph says about each input's values


@dataclass(frozen=True)
class InputPlan:
    """How one input of one case is generated: shape, dtype, the inclusive value range and why that range."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    low: float
    high: float  # inclusive for integers and masks; floats are uniform in [low, high)
    rule: str  # why these values, e.g. "indexes Gather 'word_embeddings' of 1000 rows"
    mask: bool = False  # 0/1 values: each row ones, then zeros (at least half ones)
    seed: int = 0

    def record(self) -> dict[str, Any]:
        """The form ``CaseResult.inputs`` stores (results.json, the report)."""
        return {"shape": list(self.shape), "dtype": self.dtype, "range": [_plain(self.low), _plain(self.high)],
                "rule": self.rule}  # fmt: skip

    def describe(self) -> str:
        values = f"{_plain(self.low)}..{_plain(self.high)}"
        return f"'{self.name}' ({self.dtype}{list(self.shape)}, values {values}: {self.rule})"

    def values(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        numpy_dtype = "float32" if self.dtype == "bfloat16" else self.dtype
        if self.mask:
            return _mask(self.shape, rng).astype(numpy_dtype)
        if self.dtype == "bool" or np.issubdtype(np.dtype(numpy_dtype), np.integer):
            drawn = rng.integers(int(self.low), int(self.high), size=self.shape, endpoint=True)
            return drawn.astype(numpy_dtype)
        return rng.uniform(self.low, self.high, size=self.shape).astype(numpy_dtype)


def zoo_dir() -> Path:
    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


@lru_cache(maxsize=1)
def zoo_names() -> tuple[str, ...]:
    """Short names (without 'light_') of the models shipped in the onnx wheel."""
    return tuple(sorted(p.stem.removeprefix("light_") for p in zoo_dir().glob("light_*.onnx")))


def source_path(spec: ModelSpec) -> Path:
    if spec.source == "onnx_zoo":
        return zoo_dir() / f"light_{spec.location}.onnx"
    return Path(spec.location)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_onnx(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError and friends for damaged files
        raise HarnessError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc}); re-export the model or fix the path"
        ) from None


def real_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
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


def prepare(spec: ModelSpec, cache_dir: Path) -> PreparedModel:
    """Load the model and, when its batch dimension is fixed (any size), rewrite it to a dynamic ``batch`` dimension.

    The rewritten file is cached by the hash of the source bytes, so every case and run shares one copy.
    """
    if spec.source == "torch":
        return prepare_torch(spec, cache_dir)
    src = source_path(spec)
    if not src.is_file():
        raise HarnessError(f"model '{spec.name}': file {src} is missing; restore it or fix the suite")
    data = src.read_bytes()
    model = load_onnx(src)
    fixed = fixed_batch_of(model)
    if fixed is None:  # a dynamic batch axis already (or no batch at all): use as is
        return _prepared(spec.name, src, data, model)

    target = cache_dir / "models" / f"{sha256_bytes(data)[:16]}-dynbatch{DYNAMIC_FORMAT}.onnx"
    if target.is_file():
        return _prepared(spec.name, target, target.read_bytes(), load_onnx(target))
    rewritten, reason = make_batch_dynamic(model, _probe_dims(spec))
    if rewritten is None:
        return _prepared(spec.name, src, data, model, fixed_batch=fixed, batch_note=reason)
    out = rewritten.SerializeToString()
    atomic_write_bytes(target, out)
    return _prepared(spec.name, target, out, rewritten)


def _prepared(
    name: str, path: Path, data: bytes, model: onnx.ModelProto, fixed_batch: int | None = None, batch_note: str = ""
) -> PreparedModel:
    inputs = tuple(tensor_info(vi) for vi in real_inputs(model.graph))
    return PreparedModel(
        name=name,
        path=path,
        sha256=sha256_bytes(data),
        inputs=inputs,
        outputs=tuple(tensor_info(vi) for vi in model.graph.output),
        fixed_batch=fixed_batch,
        batch_note=batch_note,
        hints=input_hints(model, [i.name for i in inputs]),
    )


# -- the batch axis --------------------------------------------------------------------------------------------------
# The batch axis of an input is its leading dimension when that is dynamic, whatever its name (batch, N, batch_size,
# unk__0, or none); a name that leads any input is the batch wherever it appears. A case's batch size always sizes
# it: a shape set may not, so cases -b1 and -b4 never feed the same batch.


def fixed_batch_of(model: onnx.ModelProto) -> int | None:
    """The fixed leading dimension of a graph whose inputs all have one (an export without a dynamic batch axis)."""
    leading = [tensor_info(vi).shape[0] for vi in real_inputs(model.graph) if tensor_info(vi).shape]
    if not leading or not all(isinstance(d, int) for d in leading):
        return None
    return int(leading[0])  # type: ignore[arg-type]


def batch_names(inputs: tuple[TensorInfo, ...]) -> frozenset[str]:
    """The names of the batch axis: the named dynamic dims that lead an input, and ``batch``."""
    return frozenset({BATCH_DIM} | {i.shape[0] for i in inputs if i.shape and isinstance(i.shape[0], str)})


def check_batch(model: PreparedModel, case: Case) -> None:
    """A model pinned to one batch runs only at that batch: other batch sizes are the suite's mistake."""
    if model.fixed_batch is not None and case.batch_size != model.fixed_batch:
        raise HarnessError(
            f"{case.id}: model '{case.model.name}' runs only at batch {model.fixed_batch} ({model.batch_note}); "
            f"set batch_sizes: [{model.fixed_batch}] for {model_key(case)}, or export it with a dynamic batch axis"
        )


def model_key(case: Case) -> str:
    """``models[i]``: where the case's model sits in its suite file (the key path error messages name)."""
    names = [m.name for m in case.suite.models]
    return f"models[{names.index(case.model.name)}]" if case.model.name in names else f"model '{case.model.name}'"


def input_shape(
    info: TensorInfo, override: InputSpec | None, case: Case, batch_axis: frozenset[str] = frozenset({BATCH_DIM})
) -> tuple[int, ...]:
    """Concrete shape for one input in one case: the batch axis from the case, named dims from its shape set.

    Without an override, the input's leading dynamic dim and every dim named in ``batch_axis`` take the case's batch
    size. An ``inputs.NAME.shape`` override is taken as written: ``batch`` there is the batch axis, names come from
    the shape set, numbers stay. A shape set that sizes the batch axis, or an override that leaves a batched input
    without ``batch``, is refused: the case's batch size would no longer be the batch fed.
    """
    dims = case.dims
    where = f"{model_key(case)}.inputs.{info.name}.shape"
    if override and override.shape:
        template: tuple[int | str | None, ...] = override.shape
        batch_at = {i for i, d in enumerate(template) if d == BATCH_DIM}
        if not batch_at and info.shape and not isinstance(info.shape[0], int) and len(case.model.batch_sizes) > 1:
            raise HarnessError(
                f"{case.id}: {where} has no 'batch' entry, so every batch size would feed the same shape; "
                "write 'batch' where the batch axis is"
            )
    else:
        template = info.shape
        batch_at = {i for i, d in enumerate(template) if (i == 0 and not isinstance(d, int)) or d in batch_axis}
    out: list[int] = []
    for i, dim in enumerate(template):
        if isinstance(dim, int):
            out.append(dim)
        elif i in batch_at:
            if isinstance(dim, str) and dim in dims:
                raise HarnessError(
                    f"{case.id}: shape set '{case.shape_label}' sets '{dim}', the batch axis of model "
                    f"'{case.model.name}' (input '{info.name}' leads with it); remove '{dim}' from "
                    f"shapes.{case.shape_label} and choose the batch with batch_sizes"
                )
            out.append(case.batch_size)
        elif isinstance(dim, str) and dim in dims:
            out.append(dims[dim])
        else:
            shown = dim if dim is not None else f"#{i}"
            raise HarnessError(
                f"{case.id}: input '{info.name}' has dynamic dimension '{shown}'; give its size in the suite with "
                f"shapes: {{LABEL: {{{shown}: SIZE}}}} or inputs: {{{info.name}: {{shape: [...]}}}}"
            )
    return tuple(out)


# -- input values ----------------------------------------------------------------------------------------------------
def plan_inputs(model: PreparedModel, case: Case) -> dict[str, InputPlan]:
    """How every input of ``case`` is generated, decided from the graph before the user has to say anything.

    Per input, the first rule that applies:

    1. ``models[i].inputs.NAME.range: [low, high]`` from the suite, **inclusive** for integers (``[0, 1]`` gives 0s
       and 1s), uniform in ``[low, high)`` for floats;
    2. a mask (bool, named like ``*mask*``, or used as a condition by the graph): 0/1, each row a run of ones
       (at least half of it, like real padding) then zeros;
    3. an integer input that indexes a Gather (directly or through Cast/Reshape/Unsqueeze/... that keep its values):
       ``0 .. rows - 1`` of the smallest table it indexes (the Gather's axis sets which dimension counts);
    4. otherwise integers ``0..99``, floats uniform in ``[0, 1)``.
    """
    check_batch(model, case)
    unknown = set(case.model.inputs) - {i.name for i in model.inputs}
    if unknown:
        raise HarnessError(
            f"{case.id}: the suite sets inputs {sorted(unknown)} but the model's inputs are "
            f"{[i.name for i in model.inputs]}; fix the names under 'inputs'"
        )
    axis = batch_names(model.inputs)
    plans: dict[str, InputPlan] = {}
    for info in model.inputs:
        override = case.model.inputs.get(info.name)
        shape = input_shape(info, override, case, axis)
        dtype = (override.dtype if override and override.dtype else None) or info.dtype
        seed = zlib.crc32(f"{case.model.name}:{info.name}:{shape}".encode())
        low, high, rule, mask = _value_rule(info.name, dtype, override, model.hints.get(info.name), case)
        plans[info.name] = InputPlan(info.name, shape, dtype, low, high, rule, mask, seed)
    return plans


def generate_inputs(
    model: PreparedModel, case: Case, plans: dict[str, InputPlan] | None = None
) -> dict[str, np.ndarray]:
    """Deterministic inputs (see :func:`plan_inputs`): the same case always gets the same values."""
    plans = plans if plans is not None else plan_inputs(model, case)
    return {name: plan.values() for name, plan in plans.items()}


def _value_rule(
    name: str, dtype: str, override: InputSpec | None, hint: InputHint | None, case: Case
) -> tuple[float, float, str, bool]:
    """(low, high, rule, is_mask) for one input; see :func:`plan_inputs` for the order of the rules."""
    integer = dtype == "bool" or (dtype != "bfloat16" and np.issubdtype(np.dtype(dtype), np.integer))
    if override and override.range:
        low, high = override.range
        key = f"{model_key(case)}.inputs.{name}.range"
        if integer:
            low, high = math.ceil(low), math.floor(high)
            if low > high:
                raise HarnessError(f"{case.id}: {key} {list(override.range)} holds no integer; widen it")
        return low, high, f"suite range ({key}, inclusive)" if integer else f"suite range ({key})", False
    return _graph_rule(name, dtype, hint)


def _graph_rule(name: str, dtype: str, hint: InputHint | None) -> tuple[float, float, str, bool]:
    """Rules 2-4 of :func:`plan_inputs`: what the input's name, dtype and place in the graph say."""
    integer = dtype == "bool" or (dtype != "bfloat16" and np.issubdtype(np.dtype(dtype), np.integer))
    if dtype == "bool":
        return 0, 1, "mask (bool): each row ones, then zeros", True
    if looks_like_mask(name) or (hint is not None and hint.kind == "mask"):
        why = "named like a mask" if looks_like_mask(name) else hint.why if hint else ""
        return 0, 1, f"mask ({why}): each row ones, then zeros", True
    if integer and hint is not None and hint.kind == "index" and hint.rows:
        return 0, hint.rows - 1, f"indexes Gather '{hint.node}' of {hint.rows} rows", False
    if integer:
        return *DEFAULT_INT_RANGE, "default for integers (indexes no table the graph shows)", False
    return *DEFAULT_FLOAT_RANGE, "default for floats, uniform", False


def _mask(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """1 for the first ``n`` positions of each row (``n`` between half and all of it), 0 after: what an attention
    mask of a padded batch looks like, with a different length per row. The row runs along the last axis longer
    than 1 (the sequence of ``[batch, seq]``, ``[batch, seq, 1]`` and ``[batch, 1, 1, seq]`` masks alike)."""
    long_axes = [i for i, size in enumerate(shape) if size > 1 and i > 0]
    if not long_axes:
        return np.ones(shape, dtype=np.int64)
    axis = long_axes[-1]
    moved = (*shape[:axis], *shape[axis + 1 :], shape[axis])
    length = shape[axis]
    ones = rng.integers((length + 1) // 2, length, size=moved[:-1], endpoint=True)
    mask = (np.arange(length) < ones[..., None]).astype(np.int64)
    return np.moveaxis(mask, -1, axis)


def _plain(value: float) -> float | int:
    """``3.0`` -> ``3`` so ranges read as the integers they are."""
    return int(value) if float(value).is_integer() else float(value)


def rejected_inputs(model: PreparedModel, case: Case, backend: str, exc: BaseException) -> str:
    """One line for a backend that failed while running the generated inputs: the cause, the inputs that feed the
    failing node (every input when the message names none), the values fed, and the suite key that changes them."""
    cause = condensed(exc)
    try:
        plans = plan_inputs(model, case)
    except HarnessError:
        return f"{case.id}: {backend} failed while running: {cause}"
    found = re.search(r"node\. Name:'([^']*)'", str(exc))
    suspects = list(plans)
    if found:
        feeding = inputs_feeding(load_onnx(model.path), found.group(1))
        suspects = [n for n in suspects if n in feeding] or suspects
    integer = [n for n in suspects if plans[n].dtype != "bool" and "int" in plans[n].dtype]
    suspects = integer or suspects
    fed = "; ".join(plans[n].describe() for n in suspects)
    keys = " or ".join(f"{model_key(case)}.inputs.{n}.range" for n in suspects[:3])
    return (
        f"{case.id}: {backend} rejected the generated inputs: {cause}; fed {fed}; if the values are out of what the "
        f"model accepts, set {keys}: [low, high] (inclusive) in the suite"
    )


def condensed(exc: BaseException, limit: int = 600) -> str:
    """An exception's message as one line: runtime prefixes and stack-like lines dropped, every cause line kept."""
    text = re.sub(r"\[ONNXRuntimeError\] : \d+ : \w+ : ", "", str(exc)) or type(exc).__name__
    text = re.sub(r"\S*onnxruntime_src\S*:\d+\s+(?:[\w:<>,~*& ]+\([^)]*\)\s*)?", "", text)  # C++ source locations
    noise = ("Traceback", 'File "', "^", "Stacktrace", "~")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(noise)]
    one = re.sub(r"\s+", " ", "; ".join(lines))
    return one if len(one) <= limit else one[: limit - 1] + "…"


# -- making a fixed batch dynamic ----------------------------------------------------------------------------------
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


def _probe_dims(spec: ModelSpec) -> dict[str, int]:
    """Sizes of named non-batch dims for the validation run: the model's first shape set."""
    return dict(next(iter(spec.shapes.values()), {}))


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
            low, high, _, mask = _graph_rule(info.name, info.dtype, hints.get(info.name))
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


# -- PyTorch factories ----------------------------------------------------------------------------------------------
# A factory is a function without required arguments that returns ``(module, example_inputs)``: a torch.nn.Module
# and its inputs as a dict name -> tensor (the names become the ONNX input names), a tuple of tensors, or one tensor.
# Weights are the module's own: random (the harness seeds torch with 0 first, so they are the same on every run) or
# loaded by the factory from a local file; the harness never downloads anything.
_FACTORY_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
TORCH_EXPORT_OPSET = 17
_EXPORT_FORMAT = "1"  # bump when the export settings change, so cached exports are redone


def check_torch_factory(location: str, suite_path: Path) -> str | None:
    """Check ``package.module:factory`` without importing it (torch may be absent); ``None`` when it looks usable.

    A module that is not importable from ``sys.path`` but sits in a folder above the suite file (e.g.
    ``benchmarks/models/torch_zoo.py`` seen from ``benchmarks/suites/gpu.yaml``) gets that folder put on
    ``sys.path``, as pytest does for test modules.
    """
    if not _FACTORY_RE.match(location):
        return f"expected 'package.module:factory' (a Python import path and a function name), got {location!r}"
    module = location.split(":")[0]
    parts = module.split(".")
    roots = [Path(p or ".") for p in sys.path]
    if any(_module_file(root, parts) for root in roots):
        return None
    for root in Path(suite_path).resolve().parents:
        if _module_file(root, parts):
            sys.path.insert(0, str(root))
            importlib.invalidate_caches()
            return None
    return (
        f"module '{module}' not found on the Python path or in a folder above the suite file; "
        "give an importable module (add its folder to PYTHONPATH)"
    )


def _module_file(root: Path, parts: list[str]) -> Path | None:
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def load_torch_factory(location: str) -> tuple[Any, dict[str, Any]]:
    """Import and call a factory: ``(module in eval mode, {input name: example tensor})``, weights seeded with 0."""
    try:
        import torch
    except ImportError:
        raise CaseSkipped(
            f"model factory '{location}' needs PyTorch: pip install torch (a CPU build is enough to export to ONNX)"
        ) from None
    module_name, _, attr = location.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise HarnessError(
            f"torch factory '{location}': cannot import {module_name}: {type(exc).__name__}: {exc}"
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise HarnessError(f"torch factory '{location}': {module_name} has no function '{attr}'")
    torch.manual_seed(0)
    try:
        made = factory()
    except Exception as exc:
        raise HarnessError(f"torch factory '{location}' failed: {type(exc).__name__}: {exc}") from None
    if not (isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], torch.nn.Module)):
        raise HarnessError(
            f"torch factory '{location}' must return (torch.nn.Module, example inputs), got {type(made).__name__}"
        )
    net, examples = made
    if isinstance(examples, torch.Tensor):
        examples = {"input": examples}
    elif isinstance(examples, (tuple, list)):
        examples = {f"input{i}": t for i, t in enumerate(examples)}
    if (
        not isinstance(examples, dict)
        or not examples
        or not all(isinstance(t, torch.Tensor) for t in examples.values())
    ):
        raise HarnessError(
            f"torch factory '{location}': example inputs must be a tensor, a tuple of tensors or a dict name -> tensor"
        )
    return net.eval(), {str(k): v for k, v in examples.items()}


def prepare_torch(spec: ModelSpec, cache_dir: Path) -> PreparedModel:
    """Export a factory's module to ONNX (fp32, dynamic leading ``batch`` dim, opset 17), cached by the factory's
    source file, the torch version and the export settings; return it as a :class:`PreparedModel`."""
    import torch

    module_name = spec.location.split(":")[0]
    try:
        module_file = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        module_file = None
    origin = Path(module_file.origin) if module_file and module_file.origin else None
    key_text = "|".join([spec.location, torch.__version__, _EXPORT_FORMAT, origin.read_text("utf-8") if origin else ""])
    target = cache_dir / "models" / f"torch-{_slug(spec.location)}-{sha256_bytes(key_text.encode())[:16]}.onnx"
    if not target.is_file():
        net, examples = load_torch_factory(spec.location)
        names = list(examples)
        args = tuple(examples.values())
        with torch.inference_mode():
            out = net(*args)
        outputs = list(out) if isinstance(out, dict) else None
        count = 1 if isinstance(out, torch.Tensor) else len(out)
        output_names = outputs or (["output"] if count == 1 else [f"output{i}" for i in range(count)])
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with warnings.catch_warnings():  # the TorchScript exporter announces its future removal on every call
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(
                    net,
                    args,
                    str(tmp),
                    input_names=names,
                    output_names=output_names,
                    dynamic_axes={n: {0: BATCH_DIM} for n in [*names, *output_names]},
                    opset_version=TORCH_EXPORT_OPSET,
                    dynamo=False,  # the TorchScript exporter: no onnxscript needed, dynamic_axes names the batch dim
                    external_data=False,
                )
            os.replace(tmp, target)
        except Exception as exc:
            raise HarnessError(
                f"model '{spec.name}': exporting {spec.location} to ONNX failed: {type(exc).__name__}: {exc}"
            ) from None
        finally:
            tmp.unlink(missing_ok=True)
    return _prepared(spec.name, target, target.read_bytes(), load_onnx(target))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
