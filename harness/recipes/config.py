"""Suite keys of the precision recipes, validated here so the suite loader stays small.

::

    calibration: {data: calib/, samples: 16, method: minmax}   # suite level or per model
    recipes:                                                  # options per precision, suite level or per model
      fp16: {keep_io_types: true, block_ops: [Softmax]}
      int8: {per_channel: true, exclude_ops: [Softmax]}
    accuracy: {int8: {min_cosine: 0.99}}                      # tolerances, see harness.judge.accuracy
    reference_backend: onnxruntime                            # suite level: where the fp32 reference runs
    models:
      - {name: squeezenet, onnx_zoo: light_squeezenet, weights: random}   # or random:SEED
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.recipes.calibration import METHODS

CALIBRATION_KEYS = ("data", "samples", "method")
DEFAULT_SAMPLES = 16


@dataclass(frozen=True)
class CalibrationSpec:
    data: Path | None = None  # absolute; None: generated samples (with a warning)
    samples: int = DEFAULT_SAMPLES
    method: str = "minmax"


Fail = Callable[[str, str], Exception]


def parse_calibration(raw: Any, key: str, base: Path, inherited: CalibrationSpec | None, fail: Fail) -> CalibrationSpec:
    if not isinstance(raw, dict):
        raise fail(key, "expected a mapping such as {data: calib.npz, samples: 16, method: minmax}")
    _known(raw, key, CALIBRATION_KEYS, fail)
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
    if method not in METHODS:
        near = difflib.get_close_matches(str(method), METHODS, n=1)
        hint = f"did you mean '{near[0]}'?" if near else f"use one of {', '.join(METHODS)}"
        raise fail(f"{key}.method", f"unknown calibration method '{method}'; {hint}")
    return CalibrationSpec(data=data, samples=samples, method=method)


def parse_recipes(raw: Any, key: str, inherited: dict[str, dict[str, Any]], fail: Fail) -> dict[str, dict[str, Any]]:
    from harness.recipes import recipe_options_keys

    allowed = recipe_options_keys()
    if not isinstance(raw, dict):
        raise fail(key, "expected a mapping of precision -> options, e.g. {int8: {per_channel: true}}")
    out = {k: dict(v) for k, v in inherited.items()}
    for precision, options in raw.items():
        if precision not in allowed:
            raise fail(f"{key}.{precision}", f"no recipe options for this precision; options exist for {list(allowed)}")
        if not isinstance(options, dict):
            raise fail(f"{key}.{precision}", "expected a mapping of option -> value")
        _known(options, f"{key}.{precision}", tuple(allowed[precision]), fail)
        for name, value in options.items():
            kind = allowed[precision][name]
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


def _known(raw: dict[str, Any], key: str, allowed: tuple[str, ...], fail: Fail) -> None:
    for name in raw:
        if name not in allowed:
            near = difflib.get_close_matches(str(name), allowed, n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"allowed keys: {', '.join(allowed)}"
            raise fail(f"{key}.{name}", f"unknown key; {hint}")
