"""Suite keys of the precision recipes: what ``weights``, ``calibration`` and ``recipes`` accept.

::

    calibration: {data: calib/, samples: 16, method: minmax}   # suite level or per model
    recipes:                                                  # options per precision, suite level or per model
      fp16: {keep_io_types: true, block_ops: [Softmax]}
      int8: {per_channel: true, exclude_ops: [Softmax]}
    accuracy: {int8: {min_cosine: 0.99}}                      # tolerances (harness.suite.accuracy_keys)
    reference_backend: onnxruntime                            # suite level: where the fp32 reference runs
    models:
      - {name: squeezenet, onnx_zoo: light_squeezenet, weights: random}   # or random:SEED

The recipes (harness.recipes) read the option tables and the calibration methods from here, so the suite accepts
exactly what they apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.suite.problems import Fail, check_known, nearest

CALIBRATION_KEYS = ("data", "samples", "method")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
DEFAULT_SAMPLES = 16

# Options of the float recipes (harness.recipes.floats) and of the Q/DQ recipes (harness.recipes.quantize), by type.
FLOAT_OPTIONS: dict[str, type | tuple[type, ...]] = {"keep_io_types": bool, "block_ops": list, "block_nodes": list}
QUANT_OPTIONS: dict[str, type | tuple[type, ...]] = {
    "per_channel": bool,
    "symmetric_activations": bool,
    "exclude_ops": list,
    "exclude_nodes": list,
    "op_types": list,
    "percentile": (int, float),
}
# Per precision, the options a suite may give under ``recipes:``; fp32 and tf32 run the model as is.
RECIPE_OPTIONS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "fp16": FLOAT_OPTIONS,
    "bf16": FLOAT_OPTIONS,
    "int8": QUANT_OPTIONS,
    "fp8": QUANT_OPTIONS,
}


@dataclass(frozen=True)
class CalibrationSpec:
    data: Path | None = None  # absolute; None: generated samples (with a warning)
    samples: int = DEFAULT_SAMPLES
    method: str = "minmax"  # one of CALIBRATION_METHODS


def parse_calibration(raw: Any, key: str, base: Path, inherited: CalibrationSpec | None, fail: Fail) -> CalibrationSpec:
    """``calibration: {data, samples, method}``; ``data`` is relative to ``base`` (the suite's folder) and must exist;
    what is not given is inherited (the suite's setting for a model's)."""
    if not isinstance(raw, dict):
        raise fail(key, "expected a mapping such as {data: calib.npz, samples: 16, method: minmax}")
    check_known(raw, key, CALIBRATION_KEYS, fail)
    spec = inherited or CalibrationSpec()
    data = spec.data
    if "data" in raw:
        if not isinstance(raw["data"], str) or not raw["data"]:
            raise fail(f"{key}.data", "expected a path to an .npz file or a folder of .npy/.npz files")
        data = (base / raw["data"]).resolve()
        if not data.exists():
            raise fail(f"{key}.data", f"'{raw['data']}' not found (looked for {data}); paths are relative to the suite")
    samples = raw.get("samples", spec.samples)
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise fail(f"{key}.samples", f"expected a positive integer, got {samples!r}")
    method = raw.get("method", spec.method)
    if method not in CALIBRATION_METHODS:
        hint = nearest(method, CALIBRATION_METHODS, f"use one of {', '.join(CALIBRATION_METHODS)}")
        raise fail(f"{key}.method", f"unknown calibration method '{method}'; {hint}")
    return CalibrationSpec(data=data, samples=samples, method=method)


def parse_recipes(raw: Any, key: str, inherited: dict[str, dict[str, Any]], fail: Fail) -> dict[str, dict[str, Any]]:
    """``recipes: {precision: {option: value}}`` checked against :data:`RECIPE_OPTIONS`, merged over ``inherited``."""
    if not isinstance(raw, dict):
        raise fail(key, "expected a mapping of precision -> options, e.g. {int8: {per_channel: true}}")
    out = {k: dict(v) for k, v in inherited.items()}
    for precision, options in raw.items():
        if precision not in RECIPE_OPTIONS:
            raise fail(
                f"{key}.{precision}", f"no recipe options for this precision; options exist for {list(RECIPE_OPTIONS)}"
            )
        if not isinstance(options, dict):
            raise fail(f"{key}.{precision}", "expected a mapping of option -> value")
        allowed = RECIPE_OPTIONS[precision]
        check_known(options, f"{key}.{precision}", tuple(allowed), fail)
        for name, value in options.items():
            kind = allowed[name]
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
                raise fail(f"{key}.{precision}.{name}", f"wrong type {type(value).__name__}; see the README")
        out[str(precision)] = {**out.get(str(precision), {}), **options}
    return out


def parse_weights(raw: Any, key: str, fail: Fail) -> str | None:
    """``random`` or ``random:SEED`` -> ``"random:SEED"``; ``as-is`` (or absent) -> None."""
    if raw in (None, "as-is"):
        return None
    text = str(raw)
    kind, _, seed = text.partition(":")
    if kind != "random" or (seed and not seed.isdigit()):
        raise fail(key, f"expected 'random', 'random:SEED' or 'as-is', got {raw!r}")
    return f"random:{int(seed or 0)}"
