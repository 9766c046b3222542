"""The precision stage of a case, between model preparation and the gate (called by :mod:`harness.run.session`).

1. :func:`with_weights` gives a model with constant placeholder weights meaningful ones (``weights: random``).
2. :func:`typed_for_case` turns the prepared fp32 model into the case's typed model through the recipes (calibrated
   on the suite's samples, or on generated ones with a warning) before ``backend.build``.
3. :func:`check_accuracy`, after measuring, runs the typed engine and the fp32 reference (same backend, or the
   suite's ``reference_backend``) on the case's inputs, stores the numbers in ``result.accuracy`` and the lines that
   fail the case (tolerance, NaN / infinities the precision introduced, or a drop against the baseline) in
   ``result.accuracy["failures"]``. The fp32 reference outputs are built once per run and kept by
   :class:`References`, which the session owns. Every case, fp32 included, records which reference outputs hold NaN or
   infinities (``result.reference_nonfinite``): a finding shown in the terminal and the reports, and a failure
   when an output has no finite value at all (:func:`apply_failures`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.backends.base import Backend, BackendContext, get_backend
from harness.core.errors import CaseSkipped, HarnessError
from harness.core.fsio import atomic_write_bytes, write_json
from harness.core.results import CaseResult, all_nonfinite
from harness.judge import accuracy
from harness.models.inputs import generate_inputs
from harness.models.sources import PreparedModel, load_onnx, sha256_bytes
from harness.run.config import RunConfig
from harness.suite.schema import Case, Suite

WEIGHT_SAMPLES = 2  # inputs the data-dependent rescale of random weights runs on


def with_weights(prepared: PreparedModel, case: Case, cache_dir: Path) -> PreparedModel:
    """``prepared`` with its constant-filled weights replaced by seeded random ones (cached), when the suite asks."""
    weights = case.model.weights
    if not weights:
        return prepared
    seed = int(weights.partition(":")[2] or 0)
    target = Path(cache_dir) / "models" / f"{prepared.sha256[:16]}-random{seed}.onnx"
    meta_path = target.with_suffix(".json")
    if target.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        data = target.read_bytes()
        if sha256_bytes(data) == meta.get("sha256"):
            return dataclasses.replace(prepared, path=target, sha256=meta["sha256"], notes=(*prepared.notes, weights))
    from harness.recipes.weights import randomize_weights

    probe_case = _variant(case, "weights", prepared.fixed_batch or WEIGHT_SAMPLES)
    feeds = generate_inputs(prepared, probe_case)
    start = time.perf_counter()
    try:
        model, facts = randomize_weights(load_onnx(prepared.path), seed, feeds)
    except ValueError as exc:
        raise HarnessError(f"model '{case.model.name}': weights: random: {exc}; remove the 'weights' key") from None
    data = model.SerializeToString()
    atomic_write_bytes(target, data)
    digest = sha256_bytes(data)
    facts["time_ms"] = (time.perf_counter() - start) * 1e3
    write_json(meta_path, {"sha256": digest, "source_sha256": prepared.sha256, **facts})
    return dataclasses.replace(prepared, path=target, sha256=digest, notes=(*prepared.notes, weights))


def typed_for_case(
    case: Case, backend: Backend, prepared: PreparedModel, cache_dir: Path, result: CaseResult
) -> PreparedModel:
    """The model ``backend.build`` gets for this case; the recipe's facts go to ``result.recipe``."""
    if case.precision not in backend.precisions:
        notes = backend.precision_notes
        raise CaseSkipped(notes.get(case.precision) or f"{backend.name} cannot run {case.precision}")
    if not backend.takes_typed_models:
        return prepared  # the backend applies the precision itself (e.g. PyTorch's dtypes)
    from harness.recipes import typed_model

    calibration, method = None, "minmax"
    if case.precision in ("int8", "fp8"):
        calibration, method = calibration_for(case, prepared)
    options = dict(case.model.recipes.get(case.precision, {}))
    typed = typed_model(prepared, case.precision, options, cache_dir, calibration, method)
    result.recipe = typed.record()
    if case.model.weights:
        result.recipe["weights"] = case.model.weights
    result.warnings.extend(typed.warnings)
    return typed.prepared


def calibration_for(case: Case, prepared: PreparedModel) -> tuple[Any, str]:
    """The suite's calibration samples, or generated ones (a different seed from the benchmark inputs)."""
    from harness.recipes.calibration import generated_calibration, load_calibration
    from harness.suite.recipe_keys import CalibrationSpec

    spec = case.model.calibration or CalibrationSpec()
    if spec.data is not None:
        shapes = {i.name: i.shape for i in prepared.inputs}
        return load_calibration(spec.data, shapes, spec.samples, f"model '{case.model.name}': calibration"), spec.method
    # One set per model (not per batch size), so every case of the model shares one typed file.
    samples = prepared.fixed_batch or spec.samples
    return generated_calibration(generate_inputs(prepared, _variant(case, "calibration", samples))), spec.method


def check_accuracy(
    case: Case,
    engine: Any,
    feeds: dict[str, np.ndarray],
    result: CaseResult,
    baseline: dict[str, Any] | None,
    references: References,
) -> None:
    """Compare the typed engine's outputs with the fp32 reference (from ``references``); a drop against the
    accuracy recorded in ``baseline`` fails too (pass None when the run records the baseline: it is not judged
    against the one it replaces). An fp32 case is the reference: its own outputs are only checked for NaN /
    infinities (one extra inference)."""
    try:
        outputs = _outputs(engine, feeds)
    except CaseSkipped:
        if case.precision == "fp32":
            return  # a runner that returns no outputs (trtexec): the measurement stands, nothing to check
        raise
    if case.precision == "fp32":
        _flag_nonfinite(case, result, outputs)
        return
    tol = accuracy.tolerance_for(case.precision, case.model.accuracy)
    reference, label = references.outputs(case, feeds)
    _flag_nonfinite(case, result, reference)
    numbers = accuracy.compare(outputs, reference, tol)
    result.accuracy = accuracy.summary(numbers, tol, label)
    before = ((baseline or {}).get("accuracy") or {}).get("outputs")
    if not isinstance(before, dict):
        before = None
    failed = accuracy.failures(case.id, numbers, tol, before, case.precision)
    result.accuracy["failures"] = [f.line for f in failed]
    result.accuracy["failed_criteria"] = [f.to_dict() for f in failed]  # what the reports' accuracy cell names
    result.accuracy["passed"] = not failed


def _outputs(engine: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    runner = engine.runner(feeds)
    try:
        return {k: np.asarray(v) for k, v in runner.outputs().items()}
    finally:
        runner.close()


def _flag_nonfinite(case: Case, result: CaseResult, reference: dict[str, np.ndarray]) -> None:
    """Record (and warn about) the reference outputs that hold NaN or infinities on the case's inputs."""
    counts = accuracy.nonfinite_counts(reference)
    result.reference_nonfinite = counts
    empty = set(all_nonfinite(counts))  # those fail the case (apply_failures): a warning would repeat it
    result.warnings.extend(accuracy.nonfinite_lines(case.id, {k: v for k, v in counts.items() if k not in empty}))


def apply_failures(result: CaseResult) -> None:
    """An accuracy failure fails the case whatever the speed verdict, with the lines naming output and numbers; so
    does a reference output without one finite value (nothing it computes can be checked: a silent pass would be a
    lie)."""
    failures = list((result.accuracy or {}).get("failures") or [])
    counts = result.reference_nonfinite or {}
    empty = all_nonfinite(counts)
    if empty:
        failures += accuracy.nonfinite_lines(result.id, {name: counts[name] for name in empty})
    if failures:
        result.status = "failed"
        result.message = "\n".join([*failures, result.message] if result.message else failures)


class References:
    """The fp32 reference outputs of one run: the same model on the same inputs, on the run's backend or the
    suite's ``reference_backend``; built once per (suite, model, backend, batch, shape) and kept for the run, so
    every precision of a model is checked against one reference engine."""

    def __init__(
        self,
        config: RunConfig,
        backend_for: Callable[[Suite], Backend],
        prepared: Callable[[Case], PreparedModel],
    ) -> None:
        self.config = config
        self.backend_for = backend_for  # the run's backend of a suite (when the reference runs there too)
        self.prepared = prepared  # the run's prepared model of a case
        self._outputs: dict[tuple[Any, ...], dict[str, Any]] = {}

    def outputs(self, case: Case, feeds: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
        """fp32 outputs of ``case``'s model on ``feeds``, and a label naming where they were computed."""
        name = case.suite.reference_backend or self.config.backend
        key = (case.suite.name, case.model.name, name, case.batch_size, case.shape_label)
        if key not in self._outputs:
            if name == self.config.backend:
                backend = self.backend_for(case.suite)
            else:
                # The run's engine cache; a reference run writes no per-case files.
                context = BackendContext(Path(self.config.cache_dir))
                backend = get_backend(name, dict(case.suite.backends.get(name, {})), context)
            reference_case = dataclasses.replace(case, precision="fp32")
            model = self.prepared(reference_case)
            engine = backend.build(model, reference_case)
            runner = engine.runner(feeds)
            try:
                self._outputs[key] = runner.outputs()
            finally:
                runner.close()
        return {k: np.asarray(v) for k, v in self._outputs[key].items()}, f"fp32 on {name}"


def _variant(case: Case, purpose: str, batch: int) -> Case:
    """The case with another batch and a model name that seeds different inputs than the benchmark's."""
    model = dataclasses.replace(case.model, name=f"{case.model.name}#{purpose}")
    return dataclasses.replace(case, model=model, batch_size=batch)
