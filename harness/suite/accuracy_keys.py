"""Suite keys of ``accuracy: {<precision or default>: {<key>: <number>}}``: the tolerances a typed model's outputs
are held to against the fp32 reference. The limits' defaults per precision, and how each is applied, are the judge's
(harness.judge.accuracy); its ``Tolerance`` has one field per key here."""

from __future__ import annotations

from typing import Any

from harness.core.errors import HarnessError
from harness.suite.problems import nearest
from harness.suite.schema import PRECISIONS

#   atol_scale      absolute tolerance per element as a fraction of the output's largest |fp32| value
#   atol            absolute tolerance per element in the output's units (replaces atol_scale when given)
#   rtol            relative tolerance per element (an element mismatches when it exceeds both)
#   quantile        which quantile of the absolute error is reported
#   max_mismatch    allowed fraction of mismatching elements
#   min_cosine      cosine similarity of each output, flattened
#   min_top1        fraction of samples whose arg-max class agrees (classifier-shaped outputs only)
#   max_cosine_drop / max_top1_drop / max_mismatch_rise   allowed change against the case's baseline
ACCURACY_KEYS = (
    "atol_scale",
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


def parse_tolerances(raw: Any, where: str) -> dict[str, dict[str, float]]:
    """Validate a suite's ``accuracy:`` mapping: precision (or ``default``) -> {key: number}. One-line errors."""
    if not isinstance(raw, dict):
        raise HarnessError(
            f"{where}: expected a mapping of precision -> tolerances, e.g. {{int8: {{min_cosine: 0.99}}}}"
        )
    out: dict[str, dict[str, float]] = {}
    choices = ("default", *PRECISIONS)
    for precision, values in raw.items():
        if precision not in choices:
            hint = nearest(precision, choices, f"use one of {', '.join(choices)}")
            raise HarnessError(f"{where}.{precision}: unknown precision; {hint}")
        if not isinstance(values, dict):
            raise HarnessError(f"{where}.{precision}: expected a mapping such as {{atol: 0.001, min_cosine: 0.999}}")
        out[precision] = {}
        for key, value in values.items():
            if key not in ACCURACY_KEYS:
                hint = nearest(key, ACCURACY_KEYS, f"use one of {', '.join(ACCURACY_KEYS)}")
                raise HarnessError(f"{where}.{precision}.{key}: unknown tolerance; {hint}")
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise HarnessError(f"{where}.{precision}.{key}: expected a non-negative number, got {value!r}")
            out[precision][key] = float(value)
    return out
