"""Model sources and inputs: find the ONNX file, make its batch dimension dynamic, generate inputs from its signature.

Sources: an ONNX file next to the suite, a model from the ``onnx`` wheel's "light" zoo (real architectures with
generated weights, static batch 1, opset 9), or a PyTorch factory (``torch: package.module:factory``) that the harness
exports to ONNX once (cached) for the ONNX-based backends, while the torch backend runs the module itself. Old-IR
models list every initializer as a graph input too; the real inputs are the graph inputs that no initializer feeds.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
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

from harness.errors import CaseSkipped, HarnessError
from harness.fsio import atomic_write_bytes
from harness.spec import Case, InputSpec, ModelSpec

BATCH_DIM = "batch"


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
    batch_note: str = ""  # why the batch is fixed, shown as the skip reason
    notes: tuple[str, ...] = field(default=())


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
    """Load the model and, when its batch dimension is fixed, rewrite it to a dynamic ``batch`` dimension.

    The rewritten file is cached by the hash of the source bytes, so every case and run shares one copy.
    """
    if spec.source == "torch":
        return prepare_torch(spec, cache_dir)
    src = source_path(spec)
    if not src.is_file():
        raise HarnessError(f"model '{spec.name}': file {src} is missing; restore it or fix the suite")
    data = src.read_bytes()
    model = load_onnx(src)
    inputs = real_inputs(model.graph)
    leading = {tensor_info(vi).shape[0] if tensor_info(vi).shape else None for vi in inputs}
    fixed = [d for d in leading if isinstance(d, int)]
    if not fixed:  # already dynamic (or scalar inputs): use as is
        return _prepared(spec.name, src, data, model)

    target = cache_dir / "models" / f"{sha256_bytes(data)[:16]}-dynbatch.onnx"
    if target.is_file():
        return _prepared(spec.name, target, target.read_bytes(), load_onnx(target))
    rewritten, reason = make_batch_dynamic(model)
    if rewritten is None:
        return _prepared(spec.name, src, data, model, fixed_batch=fixed[0], batch_note=reason)
    out = rewritten.SerializeToString()
    atomic_write_bytes(target, out)
    return _prepared(spec.name, target, out, rewritten)


def _prepared(
    name: str, path: Path, data: bytes, model: onnx.ModelProto, fixed_batch: int | None = None, batch_note: str = ""
) -> PreparedModel:
    return PreparedModel(
        name=name,
        path=path,
        sha256=sha256_bytes(data),
        inputs=tuple(tensor_info(vi) for vi in real_inputs(model.graph)),
        outputs=tuple(tensor_info(vi) for vi in model.graph.output),
        fixed_batch=fixed_batch,
        batch_note=batch_note,
    )


def make_batch_dynamic(model: onnx.ModelProto) -> tuple[onnx.ModelProto | None, str]:
    """Return (model with a symbolic leading ``batch`` dim, "") or (None, reason it cannot be done).

    Graphs exported at batch 1 often pin the batch in a Reshape to a constant shape such as [1, 2048]; such a
    leading 1 is rewritten to 0 ("copy this dim from the input", valid while allowzero is 0). Shape inference then
    has to carry the symbolic batch through to every output, otherwise the graph pins it somewhere else.
    """
    model = copy.deepcopy(model)
    graph = model.graph
    inputs = real_inputs(graph)
    fixed = {vi.type.tensor_type.shape.dim[0].dim_value for vi in inputs if vi.type.tensor_type.shape.dim}
    if len(fixed) != 1:
        return None, "the inputs disagree on their leading dimension, so it is not a batch dimension"
    old_batch = fixed.pop()
    for vi in [*inputs, *graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = BATCH_DIM
    del graph.value_info[:]  # stale intermediate shapes would contradict the new batch dim

    initializers = {init.name: init for init in graph.initializer}
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    for node in graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in initializers:
            continue
        if any(a.name == "allowzero" and a.i for a in node.attribute):
            continue
        shape = numpy_helper.to_array(initializers[node.input[1]])
        if shape.ndim != 1 or shape.size == 0 or shape[0] != old_batch:
            continue
        new_shape = shape.copy()
        new_shape[0] = 0
        name = node.input[1]
        if consumers.get(name, 0) > 1:  # shared constant: give this Reshape its own copy
            name = f"{name}__{node.name or id(node)}_dynbatch"
            node.input[1] = name
            graph.initializer.append(numpy_helper.from_array(new_shape, name))
        else:
            initializers[name].CopyFrom(numpy_helper.from_array(new_shape, name))

    probe = copy.deepcopy(model)
    for out in probe.graph.output:
        out.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(probe, data_prop=True)
    except Exception as exc:
        return None, f"shape inference failed after making the batch dynamic ({exc})"
    for out in inferred.graph.output:
        dims = out.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            return None, (
                f"output '{out.name}' keeps a fixed leading dimension of {dims[0].dim_value}: the graph "
                f"pins the batch, so only batch {old_batch} can run; export the model with a dynamic batch"
            )
    return model, ""


def input_shape(info: TensorInfo, override: InputSpec | None, case: Case) -> tuple[int, ...]:
    """Concrete shape for one input in one case: batch from the case, named dims from the case's shape set."""
    dims = case.dims
    template: tuple[int | str | None, ...] = override.shape if override and override.shape else info.shape
    out: list[int] = []
    for i, dim in enumerate(template):
        if isinstance(dim, int):
            out.append(dim)
        elif dim == BATCH_DIM or (i == 0 and dim is None):
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


def generate_inputs(model: PreparedModel, case: Case) -> dict[str, np.ndarray]:
    """Deterministic inputs from the signature: the same case always gets the same values."""
    if model.fixed_batch is not None and case.batch_size != model.fixed_batch:
        raise CaseSkipped(f"{model.name} runs only at batch {model.fixed_batch}: {model.batch_note}")
    feeds: dict[str, np.ndarray] = {}
    for info in model.inputs:
        override = case.model.inputs.get(info.name)
        shape = input_shape(info, override, case)
        dtype = (override.dtype if override and override.dtype else None) or info.dtype
        seed = zlib.crc32(f"{case.model.name}:{info.name}:{shape}".encode())
        rng = np.random.default_rng(seed)
        low, high = override.range if override and override.range else _default_range(dtype)
        if dtype == "bool":
            feeds[info.name] = rng.random(shape) < 0.5
        elif np.issubdtype(np.dtype(dtype if dtype != "bfloat16" else "float32"), np.integer):
            feeds[info.name] = rng.integers(int(low), int(high), size=shape).astype(dtype)
        else:
            values = rng.uniform(low, high, size=shape)
            feeds[info.name] = values.astype("float32" if dtype == "bfloat16" else dtype)
    unknown = set(case.model.inputs) - {i.name for i in model.inputs}
    if unknown:
        raise HarnessError(
            f"{case.id}: the suite sets inputs {sorted(unknown)} but the model's inputs are "
            f"{[i.name for i in model.inputs]}; fix the names under 'inputs'"
        )
    return feeds


def _default_range(dtype: str) -> tuple[float, float]:
    if dtype in ("float32", "float16", "bfloat16", "float64"):
        return 0.0, 1.0
    return 0.0, 100.0


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
