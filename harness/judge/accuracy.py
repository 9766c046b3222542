"""Accuracy of a typed model (fp16, bf16, int8, fp8) against the fp32 reference of the same model, on the same inputs.

Per output: max absolute and relative error, an error quantile, the mismatch fraction under Polygraphy's rule (an
element fails only when its absolute error exceeds ``atol`` AND its relative error exceeds ``rtol``), cosine
similarity, and top-1 agreement when the output is classifier-shaped (a batch of score vectors). :func:`failures`
turns the numbers into failures against per-precision limits, and against the case's baseline; each one names the
output, the criterion (the suite key that sets its limit), the value and the limit. This module is the one place
those rules live.

Default limits come from the precision and from each output's scale. The absolute tolerance is relative to the output:
``atol = atol_scale x max|fp32|`` (the largest finite value of the reference output), so logits in the thousands and
probabilities in the thousandths are held to the same standard. ``atol_scale`` is a multiple of the float format's
unit roundoff (u in the table), as numerical libraries judge reduced-precision results (torch.testing's per-dtype
defaults; Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 2): about 20 u for tf32 and fp16 (1e-2) and
13 u for bf16 (5e-2), because a deep network compounds one rounding per layer (a ResNet-50's fp16 softmax had 5-8%
of its elements beyond 4 u, none of them a real fault). Quantized precisions compound an error of one step of each
quantized tensor's own range through every layer, so int8 allows 0.1 (a correctly calibrated SqueezeNet's flat
softmax passes; 4 steps, 0.03, fails 12% of its elements) and fp8 0.25 (4 u).
A suite's ``atol`` is an absolute limit in the output's units and replaces the scaled one.

| precision  | unit roundoff u | atol_scale (x max abs fp32) | rtol | max_mismatch | min_cosine | min_top1 |
|------------|-----------------|-----------------------------|------|--------------|------------|----------|
| fp32       | 2^-24 = 6.0e-8  | 1e-5                        | 1e-4 | 0%           | 0.99999    | 100%     |
| tf32       | 2^-11 = 4.9e-4  | 1e-2                        | 1e-2 | 1%           | 0.9999     | 100%     |
| fp16       | 2^-11 = 4.9e-4  | 1e-2                        | 1e-2 | 2%           | 0.995      | 100%     |
| bf16       | 2^-8 = 3.9e-3   | 5e-2                        | 5e-2 | 5%           | 0.98       | 90%      |
| int8       | 1/127 = 7.9e-3  | 0.1                         | 0.1  | 5%           | 0.9        | 50%      |
| fp8 (e4m3) | 2^-4 = 6.3e-2   | 0.25                        | 0.2  | 10%          | 0.85       | 50%      |

fp32 against fp32 differs only in the order of floating-point sums between kernels, hence a limit far above its u.
Against the case's baseline: the cosine may drop by ``max_cosine_drop`` (fp32-bf16 0.001, int8 0.02, fp8 0.03),
top-1 by ``max_top1_drop`` (fp32/tf32/fp16 0, bf16 10%, int8 and fp8 50%), the mismatch fraction rise by
``max_mismatch_rise`` (1%; int8 2%, fp8 5%). The cosine and top-1 limits are lenient enough for correct recipes on
the zoo models with ``weights: random`` (cosine of the softmax output: fp16 >= 0.998, int8 0.95-0.997) and far above
what broken recipes give (int8 calibrated on constant data: 0.04; int8 with the softmax quantized: 0.56, on
SqueezeNet); tighten them in a suite (``accuracy: {int8: {min_cosine: 0.99}}``) for real models.

Non-finite values are findings, never numbers to average: the error figures are computed on the elements where both
sides are finite; a NaN or infinity the typed model produces where the reference is finite fails the check on its
own line ("fp16 output 'logits': 12 of 4096 values are NaN/inf where fp32 is finite"); elements where the reference
itself is not finite cannot be judged and are counted (:func:`nonfinite_counts`) so the case can be flagged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from harness.core.errors import HarnessError


@dataclass(frozen=True)
class Tolerance:
    """The limits one precision is held to; one field per suite key of ``accuracy:`` (harness.suite.accuracy_keys)."""

    atol_scale: float = 2e-3
    atol: float | None = None  # absolute, in the output's units; None: atol_scale x max|fp32| of each output
    rtol: float = 1e-2
    quantile: float = 0.99  # which quantile of the absolute error is reported (error_quantile)
    max_mismatch: float = 0.01
    min_cosine: float = 0.999
    min_top1: float = 1.0
    max_cosine_drop: float = 0.001
    max_top1_drop: float = 0.0
    max_mismatch_rise: float = 0.01

    def atol_for(self, scale: float) -> float:
        """The absolute tolerance for an output whose largest finite |fp32| value is ``scale``."""
        return self.atol if self.atol is not None else self.atol_scale * scale

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(atol_scale=1e-5, rtol=1e-4, max_mismatch=0.0, min_cosine=0.99999),
    "tf32": Tolerance(atol_scale=1e-2, rtol=1e-2, min_cosine=0.9999),
    "fp16": Tolerance(atol_scale=1e-2, rtol=1e-2, max_mismatch=0.02, min_cosine=0.995),
    "bf16": Tolerance(atol_scale=5e-2, rtol=5e-2, max_mismatch=0.05, min_cosine=0.98, min_top1=0.9, max_top1_drop=0.1),
    "int8": Tolerance(
        atol_scale=0.1,
        rtol=0.1,
        max_mismatch=0.05,
        min_cosine=0.9,
        min_top1=0.5,
        max_cosine_drop=0.02,
        max_top1_drop=0.5,
        max_mismatch_rise=0.02,
    ),
    "fp8": Tolerance(
        atol_scale=0.25,
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
    reference_abs_max: float  # scale of the reference's finite values, to read the absolute errors against
    compared: int = -1  # elements where the reference is finite (the others cannot be judged); -1: all of them
    nonfinite: int = 0  # of those, elements where the typed output is NaN or infinite: each one is a failure
    nonfinite_nan: int = 0  # how many of ``nonfinite`` are NaN (the rest are infinities)
    atol: float | None = None  # the absolute tolerance applied to this output (Tolerance.atol_for its scale)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_output(name: str, actual: np.ndarray, reference: np.ndarray, tol: Tolerance) -> OutputAccuracy:
    """Numbers for one output; both arrays are compared in float64, on the elements where both are finite."""
    if actual.shape != reference.shape:
        raise HarnessError(
            f"output '{name}': shape {tuple(actual.shape)} differs from the reference's {tuple(reference.shape)}; "
            "the recipe changed the model's interface"
        )
    a = np.asarray(actual, dtype=np.float64).reshape(-1)
    r = np.asarray(reference, dtype=np.float64).reshape(-1)
    judged = np.isfinite(r)  # a NaN in the reference says nothing about the typed model
    broken = judged & ~np.isfinite(a)  # NaN / inf the typed model introduced
    both = judged & ~broken
    a, r = a[both], r[both]
    scale = float(np.abs(r).max(initial=0.0))
    atol = tol.atol_for(scale)
    abs_err = np.abs(a - r)
    rel_err = abs_err / np.maximum(np.abs(r), np.finfo(np.float64).tiny)
    mismatch = (abs_err > atol) & (rel_err > tol.rtol)
    return OutputAccuracy(
        name=name,
        elements=int(actual.size),
        max_abs_error=float(abs_err.max(initial=0.0)),
        max_rel_error=float(rel_err.max(initial=0.0)),
        mean_abs_error=float(abs_err.mean()) if a.size else 0.0,
        error_quantile=float(np.quantile(abs_err, tol.quantile)) if a.size else 0.0,
        quantile=tol.quantile,
        mismatch_fraction=float(mismatch.mean()) if a.size else 0.0,
        cosine_similarity=_cosine(a, r) if a.size or not broken.any() else 0.0,
        top1_agreement=top1_agreement(actual, reference),
        reference_abs_max=scale,
        compared=int(judged.sum()),
        nonfinite=int(broken.sum()),
        nonfinite_nan=int(np.isnan(np.asarray(actual, dtype=np.float64).reshape(-1)[broken]).sum()),
        atol=atol,
    )


def _cosine(a: np.ndarray, r: np.ndarray) -> float:
    """Cosine similarity of two finite vectors; 1.0 when both are all zeros (or empty), 0.0 when only one is."""
    norms = float(np.linalg.norm(a) * np.linalg.norm(r))
    if norms == 0.0:
        return 1.0 if not np.any(a) and not np.any(r) else 0.0
    return float(np.dot(a, r) / norms)


def nonfinite_counts(outputs: dict[str, np.ndarray]) -> dict[str, dict[str, int]]:
    """Per output holding any NaN or infinity: {"elements", "nan", "posinf", "neginf"}; outputs that are all finite
    (and integer or boolean outputs, which cannot hold either) are left out, so an empty result means all finite."""
    out: dict[str, dict[str, int]] = {}
    for name, value in outputs.items():
        array = np.asarray(value)
        if not np.issubdtype(array.dtype, np.floating) or np.isfinite(array).all():
            continue
        out[name] = {
            "elements": int(array.size),
            "nan": int(np.isnan(array).sum()),
            "posinf": int(np.isposinf(array).sum()),
            "neginf": int(np.isneginf(array).sum()),
        }
    return out


def _nonfinite_text(counts: dict[str, int], infinite: str = "+inf") -> str:
    """``12 NaN, 3 +inf``: the kinds present in ``counts`` ("nan", "posinf" shown as ``infinite``, "neginf")."""
    labels = (("nan", "NaN"), ("posinf", infinite), ("neginf", "-inf"))
    return ", ".join(f"{counts[k]} {label}" for k, label in labels if counts.get(k))


def nonfinite_lines(case_id: str, counts: dict[str, dict[str, int]], precision: str = "fp32") -> list[str]:
    """One line per output of the reference that holds NaN / infinities, e.g. ``m-fp32-b1: fp32 output 'y': 12 of
    4096 values are NaN/inf (12 NaN)``; an output without a single finite value says that nothing can be checked."""
    lines = []
    for name, c in counts.items():
        bad = c.get("nan", 0) + c.get("posinf", 0) + c.get("neginf", 0)
        head = f"{case_id}: {precision} output '{name}': "
        if bad >= c.get("elements", 0):
            lines.append(
                head + f"all {c.get('elements', 0)} values are NaN/inf ({_nonfinite_text(c)}): the model computes "
                "nothing checkable on these inputs; check the model, or the inputs' value ranges in the report"
            )
        else:
            lines.append(head + f"{bad} of {c.get('elements', 0)} values are NaN/inf ({_nonfinite_text(c)})")
    return lines


def top1_agreement(actual: np.ndarray, reference: np.ndarray) -> float | None:
    """Fraction of samples with the same arg-max class, over the samples whose scores are all finite on both sides;
    None unless the output looks like [batch, classes(, 1, 1)] (or no sample is finite)."""
    squeezed = reference
    if reference.ndim > 2 and all(d == 1 for d in reference.shape[2:]):
        squeezed = reference.reshape(reference.shape[:2])
    if squeezed.ndim != 2 or squeezed.shape[1] < 2:
        return None
    a = np.asarray(actual).reshape(squeezed.shape)
    rows = np.isfinite(a).all(axis=1) & np.isfinite(squeezed).all(axis=1)  # argmax of a NaN row means nothing
    if not rows.any():
        return None
    return float(np.mean(np.argmax(a[rows], axis=1) == np.argmax(squeezed[rows], axis=1)))


def compare(
    outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray], tol: Tolerance
) -> dict[str, OutputAccuracy]:
    missing = sorted(set(reference) - set(outputs))
    if missing:
        raise HarnessError(f"outputs {missing} of the reference are missing from the typed model's outputs")
    return {name: compare_output(name, outputs[name], reference[name], tol) for name in reference}


@dataclass(frozen=True)
class Failure:
    """One failed criterion of one output: ``criterion`` is the suite key that sets the limit (``min_cosine``,
    ``max_mismatch``, ``min_top1``, ``max_cosine_drop``, ``max_top1_drop``, ``max_mismatch_rise``) or ``finite``
    for NaN / infinities the typed model introduced; ``brief`` is the short form a report cell shows
    (``min_cosine 0.041 < 0.9``); ``line`` the full message."""

    output: str
    criterion: str
    value: float
    limit: float
    brief: str
    line: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check(
    case_id: str,
    results: dict[str, OutputAccuracy],
    tol: Tolerance,
    baseline: dict[str, dict[str, Any]] | None = None,
    precision: str = "",
) -> list[str]:
    """Failure lines (empty when every output is within tolerance and did not drop against the baseline)."""
    return [f.line for f in failures(case_id, results, tol, baseline, precision)]


def failures(
    case_id: str,
    results: dict[str, OutputAccuracy],
    tol: Tolerance,
    baseline: dict[str, dict[str, Any]] | None = None,
    precision: str = "",
) -> list[Failure]:
    """Every failed criterion, output by output. ``precision`` names the typed model in the line about NaN /
    infinities it introduced."""
    out: list[Failure] = []
    for name, acc in results.items():
        head = f"{case_id}: output '{name}'"
        if acc.nonfinite:
            compared = acc.compared if acc.compared >= 0 else acc.elements
            counts = {"nan": acc.nonfinite_nan, "posinf": acc.nonfinite - acc.nonfinite_nan}
            line = (
                f"{case_id}: {precision or 'typed'} output '{name}': {acc.nonfinite} of {compared} values are NaN/inf "
                f"where fp32 is finite ({_nonfinite_text(counts, infinite='inf')})"
            )
            out.append(Failure(name, "finite", acc.nonfinite, 0, f"NaN/inf {acc.nonfinite} of {compared}", line))
            if acc.nonfinite >= compared:
                continue  # not one value left to compare: the other rules would only repeat this line
        if acc.compared == 0:
            continue  # the reference has no finite value here; flagged on the case (harness.run.precision)
        out += _against_limits(head, name, acc, tol)
        before = (baseline or {}).get(name)
        if isinstance(before, dict):
            out += _against_baseline(head, name, acc, before, tol)
    return out


def _against_limits(head: str, name: str, acc: OutputAccuracy, tol: Tolerance) -> list[Failure]:
    out = []
    if acc.mismatch_fraction > tol.max_mismatch:
        atol = acc.atol if acc.atol is not None else tol.atol_for(acc.reference_abs_max)
        origin = f" ({tol.atol_scale:g} x max |fp32| {acc.reference_abs_max:.3g})" if tol.atol is None else ""
        relation = f"{acc.mismatch_fraction:.2%} > {tol.max_mismatch:.2%}"
        line = (
            f"{head}: {acc.mismatch_fraction:.2%} of {acc.elements} elements exceed both atol {atol:.3g}{origin} and "
            f"rtol {tol.rtol:g}, more than {tol.max_mismatch:.2%} (max_mismatch); max abs error "
            f"{acc.max_abs_error:.3g}, max rel error {acc.max_rel_error:.3g}"
        )
        out.append(
            Failure(name, "max_mismatch", acc.mismatch_fraction, tol.max_mismatch, f"max_mismatch {relation}", line)
        )
    if acc.cosine_similarity < tol.min_cosine:
        value, limit = _distinct(acc.cosine_similarity, tol.min_cosine)
        line = (
            f"{head}: cosine similarity {value} < {limit} (min_cosine); max abs error {acc.max_abs_error:.3g} "
            f"on values up to {acc.reference_abs_max:.3g}"
        )
        out.append(
            Failure(name, "min_cosine", acc.cosine_similarity, tol.min_cosine, f"min_cosine {value} < {limit}", line)
        )
    if acc.top1_agreement is not None and acc.top1_agreement < tol.min_top1:
        relation = f"{acc.top1_agreement:.1%} < {tol.min_top1:.1%}"
        line = f"{head}: top-1 agreement {relation} (min_top1)"
        out.append(Failure(name, "min_top1", acc.top1_agreement, tol.min_top1, f"min_top1 {relation}", line))
    return out


def _against_baseline(
    head: str, name: str, acc: OutputAccuracy, before: dict[str, Any], tol: Tolerance
) -> list[Failure]:
    """Drops against the baseline's numbers; a number the baseline lacks (or holds as NaN / null) is not compared."""
    out = []
    cosine = _finite(before.get("cosine_similarity"))
    if cosine is not None and cosine - acc.cosine_similarity > tol.max_cosine_drop:
        drop = cosine - acc.cosine_similarity
        value, limit = _distinct(drop, tol.max_cosine_drop)
        line = (
            f"{head}: cosine similarity {acc.cosine_similarity:.6f} vs baseline {cosine:.6f}: drop {value} > {limit} "
            "(max_cosine_drop)"
        )
        out.append(
            Failure(name, "max_cosine_drop", drop, tol.max_cosine_drop, f"max_cosine_drop {value} > {limit}", line)
        )
    top1 = _finite(before.get("top1_agreement"))
    if acc.top1_agreement is not None and top1 is not None and top1 - acc.top1_agreement > tol.max_top1_drop:
        drop = top1 - acc.top1_agreement
        relation = f"{drop:.1%} > {tol.max_top1_drop:.1%}"
        line = (
            f"{head}: top-1 agreement {acc.top1_agreement:.1%} vs baseline {top1:.1%}: drop {relation} (max_top1_drop)"
        )
        out.append(Failure(name, "max_top1_drop", drop, tol.max_top1_drop, f"max_top1_drop {relation}", line))
    mismatch = _finite(before.get("mismatch_fraction"))
    if mismatch is not None and acc.mismatch_fraction - mismatch > tol.max_mismatch_rise:
        rise = acc.mismatch_fraction - mismatch
        relation = f"{rise:.2%} > {tol.max_mismatch_rise:.2%}"
        line = (
            f"{head}: mismatch {acc.mismatch_fraction:.2%} vs baseline {mismatch:.2%}: rise {relation} "
            "(max_mismatch_rise)"
        )
        out.append(
            Failure(name, "max_mismatch_rise", rise, tol.max_mismatch_rise, f"max_mismatch_rise {relation}", line)
        )
    return out


def _distinct(value: float, limit: float) -> tuple[str, str]:
    """Both numbers with the fewest significant digits (3 at least) that tell them apart: ``0.041`` vs ``0.9``,
    ``0.99998`` vs ``0.99999``, never a failing ``1 < 1``."""
    for digits in range(3, 10):
        shown = f"{value:.{digits}g}", f"{limit:.{digits}g}"
        if shown[0] != shown[1]:
            return shown[0], f"{limit:g}" if float(f"{limit:g}") == limit else shown[1]
    return f"{value!r}", f"{limit!r}"


def _finite(value: Any) -> float | None:
    return (
        float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        else None
    )


def summary(results: dict[str, OutputAccuracy], tol: Tolerance, reference: str) -> dict[str, Any]:
    """The record stored in results and baselines: per-output numbers, the tolerance used, what was compared."""
    return {
        "reference": reference,
        "tolerance": tol.to_dict(),
        "outputs": {name: acc.to_dict() for name, acc in results.items()},
        "worst_cosine": min((a.cosine_similarity for a in results.values()), default=1.0),
    }


TOLERANCE_FIELDS = tuple(f.name for f in fields(Tolerance))
