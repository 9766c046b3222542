"""A/B mode: two variants of every case measured in one job, interleaved, judged on the paired ratios.

Comparing with a baseline recorded in another job mixes the change with the drift between the two jobs (another
runner, another neighbour, another clock). A/B measures both variants in the same process, alternating trials
A B, B A, A B, ... (harness.measure.trials.measure_rounds), so drift falls on both alike and cancels in each pair's
ratio;
the verdict is harness.judge.gate.judge_paired on those ratios (Wilcoxon signed-rank, tolerance, confirmation).

The variants (the reference is A, the candidate B; the verdict says how B compares with A):
- ``--ab-base DIR``: the reference runs the base branch's model files, found under DIR at the same path relative to
  the repository root (or, failing that, to the suite file's folder); the candidate runs this checkout's models.
  E.g. ``git worktree add ../base origin/main`` then ``pytest benchmarks --ab-base ../base``. A model with no file
  under DIR is new in this branch: its case is measured alone and reported as ``new``.
- ``--ab-backend NAME`` and/or ``--ab-backend-option KEY=VALUE``: the candidate runs on another backend, or on the
  same backend with other settings (e.g. ``intra_op_threads=2``); the reference runs on ``--backend`` with its usual
  options.
Both can be combined. Baselines are not read or written in A/B mode. Once the pairs are measured, both variants are
profiled layer by layer and the reference's profile is diffed against the candidate's, so a regressed verdict says
where the difference went, as it does against a stored baseline.

:class:`ABSession` is the session of such a run: the ordinary session's stages (build, measure, record), with the
comparison against a stored baseline replaced by the paired one (:meth:`ABSession.evaluate`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.backends.base import Backend, get_backend
from harness.core.errors import HarnessError
from harness.core.progress import Progress
from harness.core.results import CaseResult
from harness.core.stats import summarize
from harness.judge.gate import confirm, judge_paired
from harness.run.config import ABConfig, RunConfig
from harness.run.interleave import Interleaved, Variant
from harness.run.session import HarnessSession
from harness.suite.schema import Case

__all__ = ["AB_PAIRS", "ABConfig", "ABSession", "ab_pairs", "base_model_path", "reference_case"]

# Pairs per A/B job (and again for its confirmation). Each variant's measuring budget (min_duration_ms) is split
# into this many trials, so a job costs what two ordinary runs of the case cost. Why many short trials rather than a
# few long ones: the level of a trial shifts from one trial to the next even when they are close together, and that
# shift, not the samples inside a trial, is the noise of a pair's ratio; more pairs average it out on the same budget.
# 12 also lets the signed-rank test reach p < 0.001. The calibration that chose 12 over 6 pairs is in
# docs/evidence/gate-calibration-dev-vm.md (see also docs/gate.md, "A/B mode").
AB_PAIRS = 12


def ab_pairs(trials: int) -> int:
    """Pairs per A/B job for a suite measuring ``trials`` trials per case."""
    return max(AB_PAIRS, trials)


def base_model_path(case: Case, config: ABConfig) -> Path | None:
    """The base branch's file for this case's model; None when the base branch does not have it."""
    if case.model.source != "path" or config.base_dir is None:
        return None
    location = Path(case.model.location)
    for anchor in (Path(config.root).resolve(), case.suite.path.parent):
        try:
            relative = location.relative_to(anchor)
        except ValueError:
            continue
        candidate = Path(config.base_dir) / relative
        if candidate.is_file():
            return candidate.resolve()
    return None


def reference_case(case: Case, config: ABConfig) -> Case | None:
    """The case the reference runs: the base branch's model, or the same model; None when the base lacks it."""
    if config.base_dir is None or case.model.source != "path":
        return case  # zoo models are the same on both branches
    path = base_model_path(case, config)
    if path is None:
        return None
    return replace(case, model=replace(case.model, location=str(path)))


class ABSession(HarnessSession):
    """A session that judges each case by the paired comparison of two variants measured in this job."""

    def __init__(self, config: RunConfig, progress: Progress | None = None) -> None:
        if config.ab is None:
            raise HarnessError("A/B mode needs --ab-base DIR, --ab-backend NAME or --ab-backend-option KEY=VALUE")
        super().__init__(config, progress)
        self.ab: ABConfig = config.ab

    def measure_interleaved(
        self, cases: list[Case], progress: Callable[[str], None] | None = None, explicit: bool = True
    ) -> None:
        """Nothing: A/B mode interleaves the two variants of each case instead (an explicit --interleave is told)."""
        if self.config.build_only:
            super().measure_interleaved(cases, progress, explicit)
        elif progress is not None and explicit:
            progress("not used: A/B mode interleaves its variants")

    def candidate_backend(self, case: Case, reference: Backend) -> Backend:
        """The backend the candidate runs on: ``reference`` unless A/B compares backends or their settings."""
        config = self.ab
        if not config.compares_backends:
            return reference
        name = config.backend or self.config.backend
        options = {
            **case.suite.backends.get(name, {}),
            **(self.config.backend_options if name == reference.name else {}),
        }
        return get_backend(name, {**options, **config.backend_options}, self.backend_context())

    def evaluate(
        self, case: Case, backend: Backend, env: dict[str, Any], result: CaseResult, done: Interleaved | None
    ) -> None:
        """Measure reference and candidate interleaved, record the candidate as the case's measurement and the
        reference as what it is compared against, and apply the paired verdict (confirmed by a second set of pairs
        if regressed). ``done`` is always None: A/B mode takes no part in the interleaved pass."""
        config = self.ab
        other = self.candidate_backend(case, backend)
        ref_case = reference_case(case, config)
        cand_engine, cand_feeds = self.build_case(case, other, result)
        result.params["ab"] = {
            "reference": {"backend": backend.name, "settings": backend.settings()},
            "candidate": {"backend": other.name, "settings": other.settings()},
        }
        if ref_case is None:
            self.measure_case(case, cand_engine, cand_feeds, result)
            self.profile_case(case, cand_engine, cand_feeds, result)
            result.verdict = "new"
            result.message = f"{case.id}: {case.model.location} has no counterpart under --ab-base {config.base_dir}"
            return
        result.params["ab"]["reference"]["model"] = ref_case.model.location
        result.params["ab"]["candidate"]["model"] = case.model.location
        # The reference goes through the same pipeline (weights option, precision recipe), so an int8 case compares
        # int8 with int8; its build facts go to a scratch record, not the case's.
        ref_engine, ref_feeds = self.build_case(ref_case, backend, CaseResult(id=case.id, params={}))
        variants = [(ref_case, ref_engine, ref_feeds), (case, cand_engine, cand_feeds)]
        labels = _labels(config, backend, other)
        verdict = None
        for attempt in range(2 if self.config.confirm else 1):
            uses_gpu = other.uses_gpu or backend.uses_gpu
            pairs = ab_pairs(self.measure_spec(case.suite).trials)
            ref, cand = self.measure_trials(case, variants, uses_gpu, rounds=pairs, split=pairs)
            current = judge_paired(
                case.id,
                ref.per_trial(),
                cand.per_trial(),
                case.model.tolerance,
                alpha=self.config.alpha,
                labels=labels,
            )
            if attempt == 0:
                self.record_trials(case, cand, cand_engine, result)
                ref_median = float(summarize(ref.latency_ms)["median"])
                ref_metrics = {"latency_median_ms": ref_median, "throughput_sps": ref.throughput_sps}
                result.baseline = {"source": "ab-reference", "metrics": ref_metrics, "trials": ref.per_trial()}
                result.measure["ab_pairs"] = len(ref.measurements)
                verdict = current
                if current.verdict != "regressed":
                    break
            else:
                assert verdict is not None
                verdict = confirm(verdict, current)
                result.measure["confirmation"] = {"first_verdict": "regressed", "second_verdict": current.verdict}
        assert verdict is not None
        self.apply_verdict(result, verdict)
        self.attribute_variants(result, variants[0], variants[1])

    def attribute_variants(self, result: CaseResult, reference: Variant, candidate: Variant) -> None:
        """Profile both variants once their pairs are measured, and diff the reference's profile against the
        candidate's: the same attribution and ``where:`` as against a stored baseline. The reference's profile is
        kept with the numbers it was compared against (``result.baseline["profile"]``), as a baseline entry keeps
        its own."""
        assert result.baseline is not None
        scratch = CaseResult(id=result.id, params={}, metrics=dict(result.baseline["metrics"]))
        self.profile_case(*reference, scratch)
        result.warnings.extend(f"reference: {warning}" for warning in scratch.warnings)
        if scratch.profile is not None:
            result.baseline["profile"] = scratch.profile
        self.profile_case(*candidate, result)
        self.attribute(result, scratch.profile, result.profile)


def _labels(config: ABConfig, reference: Backend, candidate: Backend) -> tuple[str, str]:
    if config.base_dir is not None and not config.compares_backends:
        return "base", "this branch"
    ref, cand = reference.name, candidate.name
    if reference.name == candidate.name:  # same backend: name the settings that differ
        a, b = reference.settings(), candidate.settings()
        changed = sorted(k for k in {*a, *b} if a.get(k) != b.get(k))
        ref += "".join(f" {k}={a.get(k)}" for k in changed)
        cand += "".join(f" {k}={b.get(k)}" for k in changed)
    if config.base_dir is not None:
        ref, cand = f"base on {ref}", f"this branch on {cand}"
    return ref, cand
