"""Precision recipes: the fp32 ONNX model -> the typed ONNX model a case runs (the same file for every backend).

TensorRT 11 and TensorRT-RTX are strongly typed: precision comes from the model, not from builder flags. So the
precision axis is a model transform:

==========  ==========================================================================================
fp32, tf32  the model as is (tf32 is a backend setting on top of it)
fp16, bf16  weights and compute in 16-bit floats, IO kept fp32, sensitive ops kept fp32 (:mod:`.floats`)
int8        symmetric Q/DQ, per-channel weights, calibrated (minmax / entropy / percentile) (:mod:`.quantize`)
fp8         E4M3 Q/DQ, same recipe and calibration
==========  ==========================================================================================

The one entry point is :func:`typed_model`. Variants are cached under ``<cache dir>/recipes/`` by (model hash,
precision, options, calibration data hash, converter version), written atomically, so each is made once and reused
across cases, runs and backends; the record says how big the variant is and how long it took to make.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import CaseSkipped, HarnessError, output_error
from harness.core.fsio import atomic_write_bytes, locked, write_json
from harness.core.messages import condensed
from harness.models.sources import PreparedModel, load_onnx, sha256_bytes

RECIPE_VERSION = 1  # bump when a recipe changes what it produces, so cached variants are remade
AS_IS = ("fp32", "tf32")
FLOAT16 = ("fp16", "bf16")
QUANTIZED = ("int8", "fp8")
QUANT_OPSET = {"int8": 13, "fp8": 19}  # per-channel Q/DQ needs 13, float8 Q/DQ needs 19


@dataclass(frozen=True)
class TypedModel:
    """The model a case runs at its precision. ``prepared`` is what ``backend.build`` takes."""

    precision: str
    prepared: PreparedModel  # path and sha256 of the typed file, IO facts of the source
    recipe: dict[str, Any]  # what was done: converter, options, calibration facts
    size_bytes: int
    conversion_time_ms: float  # 0 for fp32 / tf32; the original conversion's time on a cache hit
    cache_hit: bool
    warnings: tuple[str, ...] = field(default=())

    @property
    def path(self) -> Path:
        return self.prepared.path

    @property
    def sha256(self) -> str:
        return self.prepared.sha256

    def record(self) -> dict[str, Any]:
        """The facts stored with a case's result."""
        return {
            "precision": self.precision,
            "path": str(self.path),
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "conversion_time_ms": round(self.conversion_time_ms, 3),
            "cache_hit": self.cache_hit,
            **self.recipe,
        }


def typed_model(
    prepared: PreparedModel,
    precision: str,
    options: dict[str, Any] | None,
    cache_dir: Path,
    calibration: Any = None,
    method: str = "minmax",
) -> TypedModel:
    """Make (or fetch from the cache) ``prepared`` at ``precision``.

    ``options`` are the recipe options of that precision (see :data:`RECIPE_OPTIONS`); ``calibration`` a
    :class:`~harness.recipes.calibration.CalibrationData`, needed for int8 / fp8. Raises :class:`CaseSkipped` when the
    installed tooling cannot make the precision, :class:`HarnessError` when a recipe fails.
    """
    options = dict(options or {})
    if precision in AS_IS:
        size = prepared.path.stat().st_size
        return TypedModel(precision, prepared, {"recipe": "as-is"}, size, 0.0, True)
    if precision not in FLOAT16 + QUANTIZED:
        raise HarnessError(f"unknown precision '{precision}'")
    if precision in QUANTIZED and calibration is None:
        raise HarnessError(f"{precision} needs calibration data; pass calibration= (see harness.recipes.calibration)")
    if precision == "fp8":
        _require_fp8()
    descriptor = {
        "recipe_version": RECIPE_VERSION,
        "model_sha256": prepared.sha256,
        "precision": precision,
        "options": options,
        "method": method if precision in QUANTIZED else None,
        "calibration_sha256": calibration.sha256 if precision in QUANTIZED else None,
        "calibration_samples": calibration.count if precision in QUANTIZED else None,
        "converter": _converter_version(),
    }
    key = hashlib.sha256(json.dumps(descriptor, sort_keys=True).encode()).hexdigest()
    target = Path(cache_dir) / "recipes" / f"{key[:20]}-{precision}.onnx"
    meta_path = target.with_suffix(".json")
    warnings = tuple(calibration.warnings) if precision in QUANTIZED else ()
    cached = _cached_variant(target, meta_path)
    if cached is not None:
        data, meta = cached
        typed = dataclasses.replace(prepared, path=target, sha256=meta["sha256"])
        return TypedModel(precision, typed, meta["recipe"], len(data), meta["conversion_time_ms"], True, warnings)

    start = time.perf_counter()
    model = _normalized(load_onnx(prepared.path))
    recipe: dict[str, Any] = {"options": options}
    if precision == "fp16":
        from harness.recipes.floats import to_float16

        model = _convert(lambda: to_float16(model, options), precision)
        recipe["recipe"] = "onnxruntime.transformers.float16"
    elif precision == "bf16":
        from harness.recipes.floats import to_bfloat16

        model = _convert(lambda: to_bfloat16(model, options), precision)
        recipe["recipe"] = "onnxruntime.transformers.float16 retyped to bfloat16"
    else:
        from harness.recipes.quantize import quantize

        model = _upgrade_opset(model, QUANT_OPSET[precision])
        model = _convert(lambda: quantize(model, precision, options, method, calibration), precision)
        recipe["recipe"] = "onnxruntime.quantization.quantize_static QDQ"
        used = "distribution" if precision == "fp8" else method
        recipe["calibration"] = {"source": calibration.source, "samples": calibration.count, "method": used}
    data = model.SerializeToString()
    elapsed_ms = (time.perf_counter() - start) * 1e3
    digest = sha256_bytes(data)
    # Model first, metadata last (the metadata is the commit record), under a lock so two runs sharing the cache
    # never interleave their writes of one variant; each file is replaced atomically, so readers see whole files.
    try:
        with locked(target):
            atomic_write_bytes(target, data)
            write_json(
                meta_path, {"sha256": digest, "conversion_time_ms": elapsed_ms, "recipe": recipe, "key": descriptor}
            )
    except OSError as exc:
        raise output_error(exc, target, "--harness-cache") from None
    typed = dataclasses.replace(prepared, path=target, sha256=digest)
    return TypedModel(precision, typed, recipe, len(data), elapsed_ms, False, warnings)


def _cached_variant(target: Path, meta_path: Path) -> tuple[bytes, dict[str, Any]] | None:
    """The cached model bytes and metadata when both are there and agree; None (a miss, remade) for a damaged,
    partial or foreign entry, which must never be handed to a backend."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        data = target.read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or sha256_bytes(data) != meta.get("sha256"):
        return None
    if not isinstance(meta.get("recipe"), dict) or not isinstance(meta.get("conversion_time_ms"), (int, float)):
        return None
    return data, meta


def _convert(make: Any, precision: str) -> Any:
    try:
        return make()
    except HarnessError:
        raise
    except Exception as exc:  # the converters raise anything from ValueError to onnx's checker errors
        # The cause is often on a later line of onnxruntime's message ("index: 0 Got: 1 Expected: 8"): keep it all.
        raise HarnessError(f"the {precision} recipe failed: {type(exc).__name__}: {condensed(exc)}") from None


def _normalized(model: Any) -> Any:
    """Drop initializers from the graph inputs (old IR convention) and name every node, as the converters need."""
    import onnx

    graph = model.graph
    inits = {i.name for i in graph.initializer}
    real = [vi for vi in graph.input if vi.name not in inits]
    del graph.input[:]
    graph.input.extend(real)
    model.ir_version = max(model.ir_version, 4)
    taken = {n.name for n in graph.node if n.name}
    for i, node in enumerate(graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)
    del graph.value_info[:]
    return onnx.shape_inference.infer_shapes(model)


def _upgrade_opset(model: Any, opset: int) -> Any:
    import onnx
    from onnx import version_converter

    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
    if current >= opset:
        return model
    try:
        upgraded = version_converter.convert_version(model, opset)
    except Exception as exc:
        raise HarnessError(
            f"the model's opset {current} could not be upgraded to {opset}, which Q/DQ needs ({exc}); "
            "re-export the model at a newer opset"
        ) from None
    return onnx.shape_inference.infer_shapes(upgraded)


def _require_fp8() -> None:
    try:
        from onnxruntime.quantization import QuantType
    except ImportError:
        raise CaseSkipped("fp8 Q/DQ needs onnxruntime's quantization tools: pip install onnxruntime") from None
    if not hasattr(QuantType, "QFLOAT8E4M3FN"):
        raise CaseSkipped("the installed onnxruntime cannot make fp8 E4M3 Q/DQ (no QuantType.QFLOAT8E4M3FN)")


def _converter_version() -> str:
    import onnx

    try:
        import onnxruntime

        ort = onnxruntime.__version__
    except ImportError:
        ort = "none"
    return f"onnx-{onnx.__version__}+onnxruntime-{ort}"
