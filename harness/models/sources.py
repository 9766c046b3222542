"""Model sources: the ONNX file a case's backend builds from, as a :class:`PreparedModel`.

Sources: an ONNX file next to the suite, a model from the ``onnx`` wheel's "light" zoo (real architectures with
generated weights, static batch 1, opset 9), or a PyTorch factory (``torch: package.module:factory``,
harness.models.factories) that the harness exports to ONNX once (cached) for the ONNX-based backends, while the torch
backend runs the module itself. A fixed batch dimension is made dynamic on the way (harness.models.batch).

A suite is loaded without this stage; :func:`check_sources` then checks what only this stage can tell (the zoo model
is in the wheel, the factory's module can be found), before anything runs.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import onnx

from harness.core.errors import HarnessError, SuiteError
from harness.core.fsio import atomic_write_bytes
from harness.models.batch import BATCH_DIM, DYNAMIC_FORMAT, fixed_batch_of, make_batch_dynamic
from harness.models.factories import factory_problem, load_torch_factory, locate_factory
from harness.models.graph import InputHint, TensorInfo, input_hints, real_inputs, tensor_info
from harness.suite.schema import ModelSpec, Suite

TORCH_EXPORT_OPSET = 17
EXPORT_FORMAT = "1"  # bump when the torch export settings change, so cached exports are redone


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


def load_onnx_structure(path: Path) -> onnx.ModelProto:
    """The model at ``path`` without its external weights (they stay on disk): its graph, node names and metadata,
    for what reads the model rather than runs it. A path that is not an ONNX file is one :class:`HarnessError`."""
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "not found"
        raise HarnessError(f"{path}: {what}; give the path of an ONNX model file (.onnx)")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends for what is not an ONNX file
        raise HarnessError(
            f"{path}: not an ONNX model ({type(exc).__name__}); export it to ONNX first, e.g. with torch.onnx.export"
        ) from None


def check_sources(suite: Suite) -> None:
    """Refuse a model source that this stage cannot find (a zoo model not in the onnx wheel, a torch factory whose
    module is nowhere to import from) with the one-line :class:`SuiteError` loading would give, naming the line.
    Called wherever a suite is loaded to be run or listed; it imports neither the factory nor torch."""
    for index, model in enumerate(suite.models):
        problem = source_problem(model)
        if problem:
            file = model.suite_file or suite.path
            where = f"{file}: line {model.line}" if model.line else str(file)
            raise SuiteError(f"{where}: models[{index}].{model.source}: {problem}")


def source_problem(spec: ModelSpec) -> str | None:
    """Why the model's zoo name or torch factory cannot be found here (with the fix), or None."""
    if spec.source == "torch":
        return factory_problem(spec.location, spec.suite_file)
    if spec.source == "onnx_zoo" and spec.location not in zoo_names():
        near = difflib.get_close_matches(spec.location, zoo_names(), n=1)
        hint = f"did you mean 'light_{near[0]}'?" if near else f"known: {', '.join(zoo_names())}"
        return f"unknown zoo model 'light_{spec.location}'; {hint}"
    return None


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


def _probe_dims(spec: ModelSpec) -> dict[str, int]:
    """Sizes of named non-batch dims for the validation run: the model's first shape set."""
    return dict(next(iter(spec.shapes.values()), {}))


def prepare_torch(spec: ModelSpec, cache_dir: Path) -> PreparedModel:
    """Export a factory's module to ONNX (fp32, dynamic leading ``batch`` dim, opset 17), cached by the factory's
    source file, the torch version and the export settings; return it as a :class:`PreparedModel`."""
    import torch

    found = locate_factory(spec.location, spec.suite_file)
    source = found.file.read_text("utf-8") if found else ""
    key_text = "|".join([spec.location, torch.__version__, EXPORT_FORMAT, source])
    target = cache_dir / "models" / f"torch-{_slug(spec.location)}-{sha256_bytes(key_text.encode())[:16]}.onnx"
    if not target.is_file():
        net, examples = load_torch_factory(spec.location, spec.suite_file)
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
