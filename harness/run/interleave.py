"""The interleaved measuring pass (``--interleave``, the default for the CPU cases of a suite).

Before their test items run, the selected cases of a suite are built and their trials measured round by round
across cases (round r measures trial r of every case, A B / B A); the session's ``run_case`` then judges what was
measured here. Interleaving spreads each case's trials over the whole pass, so a slow spell of the runner (a
neighbour's job, a host slowing the guest down) touches one trial of many cases instead of every trial of one case,
where the gate's rank test would take it for a change: the host's speed moves over seconds, and trials measured
back to back share it, so their spread understates the spread between runs (docs/evidence/gate-calibration-dev-vm.md,
"Where the spread between runs comes from"). The price: every engine of the suite is held at once, and no case is
finished (recorded) until the pass is over.

A case that fails (its build, a runner, a trial) is dropped from its suite's pass and keeps the failure, which
``run_case`` records as its outcome; the pass starts again without it, so the other cases stay interleaved with each
other. The progress lines say which cases were dropped and why.

Not ``explicit`` (neither --interleave nor --no-interleave): only suites of CPU backends with more than one selected
case are interleaved. A GPU's engines stay one at a time in its memory, and GPU timings drift far less between runs
than a shared CPU's (docs/evidence/gpu-torch-h100.md), so there is little to gain for the memory it would cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from harness.backends.base import Backend
from harness.core.errors import CaseSkipped, HarnessError
from harness.core.results import CaseResult
from harness.measure.trials import TrialSet
from harness.suite.schema import Case, MeasureSpec, Suite

Variant = tuple[Case, Any, dict[str, Any]]  # (case, engine, feeds): one thing a measuring pass measures


@dataclass
class Interleaved:
    """A case built (and then measured) ahead of its test item by the interleaved pass."""

    result: CaseResult
    engine: Any
    feeds: dict[str, Any]
    trials: TrialSet | None = None
    error: Exception | None = None  # why it was dropped from the pass; run_case records it as the case's outcome
    rounds_with: int = 0  # how many cases its trials were interleaved with (itself included)


class VariantFailed(Exception):
    """Variant ``index`` of a measuring pass raised ``error`` (the session's ``measure_trials`` with
    ``tag_failures``), so the pass can go on without it."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(f"variant {index}: {error}")
        self.index = index
        self.error = error


class Stages(Protocol):
    """The session stages the pass uses (harness.run.session.HarnessSession provides them)."""

    def backend_for(self, suite: Suite) -> Backend: ...

    def environment(self, backend: Backend) -> dict[str, Any]: ...

    def build_case(self, case: Case, backend: Backend, result: CaseResult) -> tuple[Any, dict[str, Any]]: ...

    def measure_trials(
        self,
        case: Case,
        variants: list[Variant],
        uses_gpu: bool = False,
        rounds: int | None = None,
        split: int | None = None,
        tag_failures: bool = False,
    ) -> list[TrialSet]: ...

    def uses_gpu(self, suite: Suite) -> bool: ...

    def measure_spec(self, suite: Suite) -> MeasureSpec: ...


def reason(exc: BaseException, case_id: str = "", limit: int = 160) -> str:
    """An exception as a short phrase for a progress line that names the case already (its first line, without a
    leading ``<case id>: ``, shortened)."""
    text = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text.removeprefix(f"{case_id}: ") if case_id else text
    if not isinstance(exc, (HarnessError, CaseSkipped)):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def interleave(
    stages: Stages, cases: list[Case], say: Callable[[str], None], explicit: bool = True
) -> dict[str, Interleaved]:
    """Build and measure ``cases`` suite by suite, interleaved; case id -> what was built and measured (or why
    not) for every case the pass took."""
    done: dict[str, Interleaved] = {}
    by_suite: dict[str, list[Case]] = {}
    for case in cases:
        by_suite.setdefault(case.suite.name, []).append(case)
    for name, group in by_suite.items():
        if not explicit and not interleaves_by_default(stages, group):
            continue
        variants, dropped, skipped = _build(stages, group, done)
        if variants:
            say(_pass_line(stages.measure_spec(group[0].suite).trials, name, len(variants), dropped, skipped))
            _measure(stages, name, variants, done, say)
        elif dropped or skipped:
            say(f"{name}: nothing to interleave{_dropped_text(dropped, skipped)}")
    return done


def interleaves_by_default(stages: Stages, group: list[Case]) -> bool:
    """Without --interleave / --no-interleave: more than one case of one suite, on a CPU backend."""
    try:
        return len(group) > 1 and not stages.uses_gpu(group[0].suite)
    except Exception:  # a backend that cannot load here: run_case reports it in each item
        return False


def _build(
    stages: Stages, group: list[Case], done: dict[str, Interleaved]
) -> tuple[list[Variant], list[tuple[str, str]], list[str]]:
    """Build every case of one suite's pass: the (case, engine, feeds) variants that built, the (id, reason)
    of those that failed and the ids of those skipped here (their failure is kept for run_case)."""
    variants: list[Variant] = []
    dropped: list[tuple[str, str]] = []
    skipped: list[str] = []
    for case in group:
        result = CaseResult(id=case.id, params=case.params())
        try:
            backend = stages.backend_for(case.suite)
            stages.environment(backend)
            engine, feeds = stages.build_case(case, backend, result)
        except Exception as exc:
            done[case.id] = Interleaved(result, None, {}, error=exc)
            if isinstance(exc, CaseSkipped):
                skipped.append(case.id)
            else:
                dropped.append((case.id, reason(exc, case.id)))
            continue
        done[case.id] = Interleaved(result, engine, feeds)
        variants.append((case, engine, feeds))
    return variants, dropped, skipped


def _measure(
    stages: Stages, suite: str, variants: list[Variant], done: dict[str, Interleaved], say: Callable[[str], None]
) -> None:
    """Measure ``variants`` interleaved; a variant that fails is dropped (keeping its error) and the pass is
    measured again without it. A failure that belongs to no variant leaves every case to run_case, which then
    measures it on its own: the line says so."""
    variants = list(variants)
    while variants:
        first = variants[0][0]
        try:
            measured = stages.measure_trials(first, variants, stages.uses_gpu(first.suite), tag_failures=True)
        except VariantFailed as failed:
            case = variants.pop(failed.index)[0]
            done[case.id].error = failed.error
            again = f"measuring the other {len(variants)} again" if variants else "no case left to measure"
            say(f"{suite}: dropped {case.id} from the interleaved pass ({reason(failed.error, case.id)}); {again}")
            continue
        except Exception as exc:
            say(f"{suite}: interleaving failed ({reason(exc)}); its cases are measured one after another")
            return
        for (case, _, _), trials in zip(variants, measured, strict=True):
            done[case.id].trials = trials
            done[case.id].rounds_with = len(variants)
        return


def _pass_line(rounds: int, suite: str, n: int, dropped: list[tuple[str, str]], skipped: list[str]) -> str:
    """``demo: 5 cases, 3 rounds, interleaved (1 dropped: m-fp16-b1: <reason>)``; one case is not interleaved."""
    how = "interleaved" if n > 1 else "back to back (nothing to interleave with)"
    cases = f"{n} case{'s' if n != 1 else ''}"
    return f"{suite}: {cases}, {rounds} rounds, {how}{_dropped_text(dropped, skipped)}"


def _dropped_text(dropped: list[tuple[str, str]], skipped: list[str]) -> str:
    parts = []
    if dropped:
        parts.append(f"{len(dropped)} dropped: " + "; ".join(f"{case_id}: {why}" for case_id, why in dropped))
    if skipped:
        parts.append(f"{len(skipped)} skipped: {', '.join(skipped)}")
    return f" ({'; '.join(parts)})" if parts else ""
