"""Accuracy of a typed model (fp16, bf16, int8, fp8) against the fp32 reference of the same model, on the same inputs.

Per output: max absolute and relative error, an error quantile, the mismatch fraction under Polygraphy's rule (an
element fails only when its absolute error exceeds ``atol`` AND its relative error exceeds ``rtol``), cosine
similarity, and top-1 agreement when the output is classifier-shaped (a batch of score vectors). :func:`check` turns
the numbers into failure lines against per-precision tolerances, and against the case's baseline, naming the output
and the numbers; this module is the one place those rules live.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from harness.errors import HarnessError

# Defaults per precision, lenient enough for correct recipes on the zoo models with ``weights: random`` (cosine of
# the softmax output: fp16 >= 0.998, int8 0.95-0.997) and far above what broken recipes give (int8 calibrated on
# constant data: 0.04; int8 with the softmax quantized: 0.56, on SqueezeNet). Tighten them in a suite for real models.
#   atol / rtol     Polygraphy's mismatch rule, per element
#   max_mismatch    allowed fraction of mismatching elements
#   min_cosine      cosine similarity of each output, flattened
#   min_top1        fraction of samples whose arg-max class agrees (classifier-shaped outputs only)
#   max_cosine_drop / max_top1_drop / max_mismatch_rise   allowed change against the case's baseline
ACCURACY_KEYS = (
    "atol",
    "rtol",
    "quantile",
    "max_mismatch",
    "min_cosine",
    "min_top1",
    "max_cosine_drop",
    "max_top1_drop",
    "max_mismatch_rise",
)


@dataclass(frozen=True)
class Tolerance:
    atol: float = 1e-3
    rtol: float = 1e-2
    quantile: float = 0.99  # which quantile of the absolute error is reported (error_quantile)
    max_mismatch: float = 0.01
    min_cosine: float = 0.999
    min_top1: float = 1.0
    max_cosine_drop: float = 0.001
    max_top1_drop: float = 0.0
    max_mismatch_rise: float = 0.01

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(atol=1e-5, rtol=1e-4, max_mismatch=0.0, min_cosine=0.99999),
    "tf32": Tolerance(atol=1e-3, rtol=1e-2, min_cosine=0.9999),
    "fp16": Tolerance(atol=1e-3, rtol=1e-2, max_mismatch=0.02, min_cosine=0.995),
    "bf16": Tolerance(atol=5e-3, rtol=5e-2, max_mismatch=0.05, min_cosine=0.98, min_top1=0.9, max_top1_drop=0.1),
    "int8": Tolerance(
        atol=1e-2,
        rtol=0.1,
        max_mismatch=0.05,
        min_cosine=0.9,
        min_top1=0.5,
        max_cosine_drop=0.02,
        max_top1_drop=0.5,
        max_mismatch_rise=0.02,
    ),
    "fp8": Tolerance(
        atol=2e-2,
        rtol=0.2,
        max_mismatch=0.1,
        min_cosine=0.85,
        min_top1=0.5,
        max_cosine_drop=0.03,
        max_top1_drop=0.5,
        max_mismatch_rise=0.05,
    ),
}


def tolerance_for(precision: str, overrides: dict[str, dict[str, float]] | None = None) -> Tolerance:
    """The default tolerance of ``precision`` with the suite's overrides (``accuracy: {int8: {min_cosine: 0.99}}``)."""
    base = DEFAULT_TOLERANCES.get(precision, DEFAULT_TOLERANCES["fp32"])
    given = dict((overrides or {}).get("default", {}))
    given.update((overrides or {}).get(precision, {}))
    return replace(base, **given) if given else base


def parse_tolerances(raw: Any, where: str) -> dict[str, dict[str, float]]:
    """Validate a suite's ``accuracy:`` mapping: precision (or ``default``) -> {key: number}. One-line errors."""
    import difflib

    from harness.spec import PRECISIONS

    if not isinstance(raw, dict):
        raise HarnessError(
            f"{where}: expected a mapping of precision -> tolerances, e.g. {{int8: {{min_cosine: 0.99}}}}"
        )
    out: dict[str, dict[str, float]] = {}
    for precision, values in raw.items():
        choices = ("default", *PRECISIONS)
        if precision not in choices:
            near = difflib.get_close_matches(str(precision), choices, n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"use one of {', '.join(choices)}"
            raise HarnessError(f"{where}.{precision}: unknown precision; {hint}")
        if not isinstance(values, dict):
            raise HarnessError(f"{where}.{precision}: expected a mapping such as {{atol: 0.001, min_cosine: 0.999}}")
        out[precision] = {}
        for key, value in values.items():
            if key not in ACCURACY_KEYS:
                near = difflib.get_close_matches(str(key), ACCURACY_KEYS, n=1)
                hint = f"did you mean '{near[0]}'?" if near else f"use one of {', '.join(ACCURACY_KEYS)}"
                raise HarnessError(f"{where}.{precision}.{key}: unknown tolerance; {hint}")
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise HarnessError(f"{where}.{precision}.{key}: expected a non-negative number, got {value!r}")
            out[precision][key] = float(value)
    return out


@dataclass(frozen=True)
class OutputAccuracy:
    """How far one output of the typed model is from the reference."""

    name: str
    elements: int
    max_abs_error: float
    max_rel_error: float
    mean_abs_error: float
    error_quantile: float  # the ``quantile`` (e.g. p99) of the absolute error
    quantile: float
    mismatch_fraction: float  # elements failing both atol and rtol (Polygraphy's rule)
    cosine_similarity: float
    top1_agreement: float | None  # None when the output is not classifier-shaped
    reference_abs_max: float  # scale of the reference, to read the absolute errors against

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_output(name: str, actual: np.ndarray, reference: np.ndarray, tol: Tolerance) -> OutputAccuracy:
    """Numbers for one output; both arrays are compared in float64."""
    if actual.shape != reference.shape:
        raise HarnessError(
            f"output '{name}': shape {tuple(actual.shape)} differs from the reference's {tuple(reference.shape)}; "
            "the recipe changed the model's interface"
        )
    a = np.asarray(actual, dtype=np.float64).reshape(-1)
    r = np.asarray(reference, dtype=np.float64).reshape(-1)
    if a.size == 0:
        return OutputAccuracy(name, 0, 0.0, 0.0, 0.0, 0.0, tol.quantile, 0.0, 1.0, None, 0.0)
    finite = np.isfinite(a)
    abs_err = np.where(finite, np.abs(a - r), np.inf)
    rel_err = abs_err / np.maximum(np.abs(r), np.finfo(np.float64).tiny)
    mismatch = (abs_err > tol.atol) & (rel_err > tol.rtol)
    norms = float(np.linalg.norm(a[finite]) * np.linalg.norm(r))
    if not finite.all():
        cosine = 0.0
    elif norms == 0.0:
        cosine = 1.0 if not np.any(a) and not np.any(r) else 0.0
    else:
        cosine = float(np.dot(a, r) / norms)
    return OutputAccuracy(
        name=name,
        elements=int(a.size),
        max_abs_error=float(abs_err.max()),
        max_rel_error=float(rel_err.max()),
        mean_abs_error=float(abs_err.mean()),
        error_quantile=float(np.quantile(abs_err, tol.quantile)) if finite.all() else float("inf"),
        quantile=tol.quantile,
        mismatch_fraction=float(mismatch.mean()),
        cosine_similarity=cosine,
        top1_agreement=top1_agreement(actual, reference),
        reference_abs_max=float(np.abs(r).max()),
    )


def top1_agreement(actual: np.ndarray, reference: np.ndarray) -> float | None:
    """Fraction of samples with the same arg-max class; None unless the output looks like [batch, classes(, 1, 1)]."""
    squeezed = reference
    if reference.ndim > 2 and all(d == 1 for d in reference.shape[2:]):
        squeezed = reference.reshape(reference.shape[:2])
    if squeezed.ndim != 2 or squeezed.shape[1] < 2:
        return None
    a = np.asarray(actual).reshape(squeezed.shape)
    return float(np.mean(np.argmax(a, axis=1) == np.argmax(squeezed, axis=1)))


def compare(
    outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray], tol: Tolerance
) -> dict[str, OutputAccuracy]:
    missing = sorted(set(reference) - set(outputs))
    if missing:
        raise HarnessError(f"outputs {missing} of the reference are missing from the typed model's outputs")
    return {name: compare_output(name, outputs[name], reference[name], tol) for name in reference}


def check(
    case_id: str,
    results: dict[str, OutputAccuracy],
    tol: Tolerance,
    baseline: dict[str, dict[str, Any]] | None = None,
) -> list[str]:
    """Failure lines (empty when every output is within tolerance and did not drop against the baseline)."""
    lines: list[str] = []
    for name, acc in results.items():
        head = f"{case_id}: output '{name}'"
        if acc.mismatch_fraction > tol.max_mismatch:
            lines.append(
                f"{head}: {acc.mismatch_fraction:.2%} of {acc.elements} elements exceed atol {tol.atol:g} and rtol "
                f"{tol.rtol:g} (allowed {tol.max_mismatch:.2%}; max abs error {acc.max_abs_error:.3g}, "
                f"max rel error {acc.max_rel_error:.3g})"
            )
        if acc.cosine_similarity < tol.min_cosine:
            lines.append(
                f"{head}: cosine similarity {acc.cosine_similarity:.6f} < {tol.min_cosine:g} "
                f"(max abs error {acc.max_abs_error:.3g} on values up to {acc.reference_abs_max:.3g})"
            )
        if acc.top1_agreement is not None and acc.top1_agreement < tol.min_top1:
            lines.append(f"{head}: top-1 agreement {acc.top1_agreement:.1%} < {tol.min_top1:.1%}")
        before = (baseline or {}).get(name)
        if not before:
            continue
        cosine_drop = float(before.get("cosine_similarity", acc.cosine_similarity)) - acc.cosine_similarity
        if cosine_drop > tol.max_cosine_drop:
            lines.append(
                f"{head}: cosine similarity {acc.cosine_similarity:.6f} vs baseline "
                f"{before['cosine_similarity']:.6f} (drop {cosine_drop:.6f} > {tol.max_cosine_drop:g})"
            )
        if acc.top1_agreement is not None and before.get("top1_agreement") is not None:
            top1_drop = float(before["top1_agreement"]) - acc.top1_agreement
            if top1_drop > tol.max_top1_drop:
                lines.append(
                    f"{head}: top-1 agreement {acc.top1_agreement:.1%} vs baseline {before['top1_agreement']:.1%} "
                    f"(drop {top1_drop:.1%} > {tol.max_top1_drop:.1%})"
                )
        rise = acc.mismatch_fraction - float(before.get("mismatch_fraction", acc.mismatch_fraction))
        if rise > tol.max_mismatch_rise:
            lines.append(
                f"{head}: mismatch {acc.mismatch_fraction:.2%} vs baseline {before['mismatch_fraction']:.2%} "
                f"(rise {rise:.2%} > {tol.max_mismatch_rise:.2%})"
            )
    return lines


def summary(results: dict[str, OutputAccuracy], tol: Tolerance, reference: str) -> dict[str, Any]:
    """The record stored in results and baselines: per-output numbers, the tolerance used, what was compared."""
    return {
        "reference": reference,
        "tolerance": tol.to_dict(),
        "outputs": {name: acc.to_dict() for name, acc in results.items()},
        "worst_cosine": min((a.cosine_similarity for a in results.values()), default=1.0),
    }


TOLERANCE_FIELDS = tuple(f.name for f in fields(Tolerance))
