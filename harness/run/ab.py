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
Both can be combined. Baselines are not read or written in A/B mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.errors import HarnessError
from harness.judge.gate import judge_paired

if TYPE_CHECKING:
    from harness.backends.base import Backend
    from harness.core.results import CaseResult
    from harness.run.session import HarnessSession
    from harness.suite.schema import Case

# Pairs per A/B job (and again for its confirmation). Each variant's measuring budget (min_duration_ms) is split
# into this many trials, so a job costs what two ordinary runs of the case cost. Why so many short trials: the level
# of a trial shifts by 2-5 % from one trial to the next even when they are 200 ms apart (measured on the 2-core
# development VM), and that shift, not the samples inside a trial, is the noise of a pair's ratio. In `harness
# calibrate` runs there, 6 pairs of 200 ms caught +5 % in 62 % of jobs and 12 pairs of 83 ms in all of them, with
# no false alarm in either (README, Calibrating the gate). 12 pairs also let the signed-rank test reach p < 0.001.
AB_PAIRS = 12


def ab_pairs(trials: int) -> int:
    """Pairs per A/B job for a suite measuring ``trials`` trials per case."""
    return max(AB_PAIRS, trials)


@dataclass(frozen=True)
class ABConfig:
    base_dir: Path | None = None  # --ab-base: a checkout of the base branch
    root: Path = Path(".")  # this checkout's root: model paths are looked up under base_dir relative to it
    backend: str | None = None  # --ab-backend: the candidate's backend (default: the reference's)
    backend_options: dict[str, Any] = field(default_factory=dict)  # --ab-backend-option: the candidate's settings

    def __post_init__(self) -> None:
        if self.base_dir is None and self.backend is None and not self.backend_options:
            raise HarnessError("A/B mode needs --ab-base DIR, --ab-backend NAME or --ab-backend-option KEY=VALUE")
        if self.base_dir is not None and not Path(self.base_dir).is_dir():
            raise HarnessError(f"--ab-base {self.base_dir}: not a folder; pass a checkout of the base branch")

    @property
    def compares_backends(self) -> bool:
        return self.backend is not None or bool(self.backend_options)


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


def candidate_backend(session: HarnessSession, case: Case, reference: Backend) -> Backend:
    config: ABConfig = session.config.ab
    if not config.compares_backends:
        return reference
    from harness.backends.base import get_backend

    name = config.backend or session.config.backend
    options = {
        **case.suite.backends.get(name, {}),
        **(session.config.backend_options if name == reference.name else {}),
    }
    return get_backend(name, {**options, **config.backend_options})


def run_ab_case(session: HarnessSession, case: Case, backend: Backend, result: CaseResult) -> None:
    """Measure reference and candidate interleaved, record the candidate as the case's measurement and the reference
    as what it is compared against, and apply the paired verdict (confirmed by a second set of pairs if regressed)."""
    from harness.judge.gate import confirm

    config: ABConfig = session.config.ab
    other = candidate_backend(session, case, backend)
    ref_case = reference_case(case, config)
    cand_engine, cand_feeds = session._build_case(case, other, result)
    result.params["ab"] = {
        "reference": {"backend": backend.name, "settings": backend.settings()},
        "candidate": {"backend": other.name, "settings": other.settings()},
    }
    if ref_case is None:
        session._measure_case(case, cand_engine, cand_feeds, result)
        result.verdict = "new"
        result.message = f"{case.id}: {case.model.location} has no counterpart under --ab-base {config.base_dir}"
        return
    result.params["ab"]["reference"]["model"] = ref_case.model.location
    result.params["ab"]["candidate"]["model"] = case.model.location
    ref_engine, ref_feeds = _build_reference(session, ref_case, backend)
    variants = [(ref_case, ref_engine, ref_feeds), (case, cand_engine, cand_feeds)]
    labels = _labels(config, backend, other)
    verdict = None
    for attempt in range(2 if session.config.confirm else 1):
        uses_gpu = bool(getattr(other, "uses_gpu", False) or getattr(backend, "uses_gpu", False))
        pairs = ab_pairs(session.measure_spec(case.suite).trials)
        ref, cand = session.measure_trials(case, variants, uses_gpu, rounds=pairs, split=pairs)
        current = judge_paired(
            case.id,
            ref.per_trial(),
            cand.per_trial(),
            case.model.tolerance,
            alpha=session.config.alpha,
            labels=labels,
        )
        if attempt == 0:
            session.record_trials(case, cand, cand_engine, result)
            ref_metrics = {"latency_median_ms": _median(ref.latency_ms), "throughput_sps": ref.throughput_sps}
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
    session.apply_verdict(result, verdict)


def _build_reference(session: HarnessSession, case: Case, backend: Backend) -> tuple[Any, dict[str, Any]]:
    """The reference's engine and inputs through the session's own pipeline (weights option, precision recipe), so
    an int8 case compares int8 with int8; its build facts go to a scratch record, not the case's."""
    from harness.core.results import CaseResult

    return session._build_case(case, backend, CaseResult(id=case.id, params={}))


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


def _median(values: list[float]) -> float:
    from harness.core.stats import summarize

    return float(summarize(values)["median"])
