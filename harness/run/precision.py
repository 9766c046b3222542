"""The precision stage of a case, between model preparation and the gate (called by :mod:`harness.run.session`).

1. :func:`with_weights` gives a model with constant placeholder weights meaningful ones (``weights: random``).
2. :func:`typed_for_case` turns the prepared fp32 model into the case's typed model through the recipes (calibrated
   on the suite's samples, or on generated ones with a warning) before ``backend.build``.
3. :func:`check_accuracy`, after measuring, runs the typed engine and the fp32 reference (same backend, or the
   suite's ``reference_backend``) on the case's inputs, stores the numbers in ``result.accuracy`` and the lines that
   fail the case (tolerance, NaN / infinities the precision introduced, or a drop against the baseline) in
   ``result.accuracy["failures"]``. Every case, fp32 included, records which reference outputs hold NaN or
   infinities (``result.reference_nonfinite``): a finding shown in the terminal and the reports, and a failure
   when an output has no finite value at all (:func:`apply_failures`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import CaseSkipped, HarnessError
from harness.core.fsio import atomic_write_bytes, write_json
from harness.core.results import all_nonfinite
from harness.judge import accuracy
from harness.models.prepare import PreparedModel, generate_inputs, load_onnx, sha256_bytes
from harness.suite.schema import Case

WEIGHT_SAMPLES = 2  # inputs the data-dependent rescale of random weights runs on


def with_weights(prepared: PreparedModel, case: Case, cache_dir: Path) -> PreparedModel:
    """``prepared`` with its constant-filled weights replaced by seeded random ones (cached), when the suite asks."""
    weights = getattr(case.model, "weights", None)
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


def typed_for_case(case: Case, backend: Any, prepared: PreparedModel, cache_dir: Path, result: Any) -> PreparedModel:
    """The model ``backend.build`` gets for this case; the recipe's facts go to ``result.recipe``."""
    if case.precision not in getattr(backend, "precisions", frozenset({case.precision})):
        notes = getattr(backend, "precision_notes", {})
        raise CaseSkipped(notes.get(case.precision) or f"{backend.name} cannot run {case.precision}")
    if not getattr(backend, "takes_typed_models", True):
        return prepared  # the backend applies the precision itself (e.g. PyTorch's dtypes)
    from harness.recipes import typed_model

    calibration, method = None, "minmax"
    if case.precision in ("int8", "fp8"):
        calibration, method = calibration_for(case, prepared)
    options = dict(case.model.recipes.get(case.precision, {}))
    typed = typed_model(prepared, case.precision, options, cache_dir, calibration, method)
    result.recipe = typed.record()
    if getattr(case.model, "weights", None):
        result.recipe["weights"] = case.model.weights
    result.warnings.extend(typed.warnings)
    return typed.prepared


def calibration_for(case: Case, prepared: PreparedModel) -> tuple[Any, str]:
    """The suite's calibration samples, or generated ones (a different seed from the benchmark inputs)."""
    from harness.recipes.calibration import generated_calibration, load_calibration
    from harness.recipes.config import CalibrationSpec

    spec = case.model.calibration or CalibrationSpec()
    if spec.data is not None:
        shapes = {i.name: i.shape for i in prepared.inputs}
        return load_calibration(spec.data, shapes, spec.samples, f"model '{case.model.name}': calibration"), spec.method
    # One set per model (not per batch size), so every case of the model shares one typed file.
    samples = prepared.fixed_batch or spec.samples
    return generated_calibration(generate_inputs(prepared, _variant(case, "calibration", samples))), spec.method


def check_accuracy(
    session: Any, case: Case, engine: Any, feeds: dict[str, np.ndarray], result: Any, baseline: dict | None
) -> None:
    """Compare the typed engine's outputs with the fp32 reference. An fp32 case is the reference: its own outputs
    are only checked for NaN / infinities (one extra inference)."""
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
    reference, label = _reference(session, case, feeds)
    _flag_nonfinite(case, result, reference)
    numbers = accuracy.compare(outputs, reference, tol)
    result.accuracy = accuracy.summary(numbers, tol, label)
    before = ((baseline or {}).get("accuracy") or {}).get("outputs")
    if session.config.update_baselines or not isinstance(before, dict):
        before = None  # the run that records a baseline is not judged against the one it replaces
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


def _flag_nonfinite(case: Case, result: Any, reference: dict[str, np.ndarray]) -> None:
    """Record (and warn about) the reference outputs that hold NaN or infinities on the case's inputs."""
    counts = accuracy.nonfinite_counts(reference)
    result.reference_nonfinite = counts
    empty = set(all_nonfinite(counts))  # those fail the case (apply_failures): a warning would repeat it
    result.warnings.extend(accuracy.nonfinite_lines(case.id, {k: v for k, v in counts.items() if k not in empty}))


def apply_failures(result: Any) -> None:
    """An accuracy failure fails the case whatever the speed verdict, with the lines naming output and numbers; so
    does a reference output without one finite value (nothing it computes can be checked: a silent pass would be a
    lie)."""
    failures = list((getattr(result, "accuracy", None) or {}).get("failures") or [])
    counts = getattr(result, "reference_nonfinite", None) or {}
    empty = all_nonfinite(counts)
    if empty:
        failures += accuracy.nonfinite_lines(result.id, {name: counts[name] for name in empty})
    if failures:
        result.status = "failed"
        result.message = "\n".join([*failures, result.message] if result.message else failures)


def _reference(session: Any, case: Case, feeds: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    """fp32 outputs of the same model on the same inputs; built once per (model, backend, shape) and kept."""
    from harness.backends.base import get_backend

    name = case.suite.reference_backend or session.config.backend
    key = (case.suite.name, case.model.name, name, case.batch_size, case.shape_label)
    cache: dict[Any, Any] = session.__dict__.setdefault("_accuracy_references", {})
    if key not in cache:
        if name == session.config.backend:
            backend = session.backend_for(case.suite)
        else:
            backend = get_backend(name, dict(case.suite.backends.get(name, {})))
        reference_case = dataclasses.replace(case, precision="fp32")
        model = session.prepared(reference_case)
        engine = backend.build(model, reference_case)
        runner = engine.runner(feeds)
        try:
            cache[key] = runner.outputs()
        finally:
            runner.close()
    return {k: np.asarray(v) for k, v in cache[key].items()}, f"fp32 on {name}"


def _variant(case: Case, purpose: str, batch: int) -> Case:
    """The case with another batch and a model name that seeds different inputs than the benchmark's."""
    model = dataclasses.replace(case.model, name=f"{case.model.name}#{purpose}")
    return dataclasses.replace(case, model=model, batch_size=batch)
