"""What a run is asked to do: the options of one benchmarking session (:class:`RunConfig`) and of A/B mode
(:class:`ABConfig`), read by the session (harness.run.session), A/B mode (harness.run.ab) and the entry points that
build them from the command line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.judge.gate import ALPHA


@dataclass(frozen=True)
class ABConfig:
    """A/B mode: the candidate variant measured against the reference in the same job (harness.run.ab)."""

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


@dataclass
class RunConfig:
    backend: str = "onnxruntime"
    backend_options: dict[str, Any] = field(default_factory=dict)  # from the command line; win over the suite's
    baseline_dir: Path = Path("baselines")
    report_dir: Path = Path("reports")
    cache_dir: Path = Path(".harness-cache")
    update_baselines: bool = False
    build_only: bool = False  # build (or fetch from the engine cache) and gate build metrics; measure nothing
    # False in pytest-xdist workers: the controller writes the baselines once, from the merged results, so two
    # workers never read-modify-write one baseline file at the same time.
    write_baselines: bool = True
    strict_baselines: bool = False
    measure_overrides: dict[str, float] = field(default_factory=dict)  # MeasureSpec fields set on the command line
    confirm: bool = True  # measure a case that looks regressed again before failing it
    # --confirm-in: where that second measurement is taken (harness.run.fresh.CONFIRM_IN); auto: a new process for
    # GPU backends, whose processes each keep a level of their own, the run's own process otherwise
    confirm_in: str = "auto"
    # --baseline-processes: how many processes a recorded baseline's trials come from (harness.run.fresh); None: 3 on
    # GPU backends, whose processes each keep a level of their own, 1 otherwise
    baseline_processes: int | None = None
    fail_on_ambiguous: bool = False  # an ambiguous verdict fails the case too
    alpha: float = ALPHA  # one-sided level of the gate's tests
    slowdown: float = 1.0  # --simulate-slowdown FACTOR: every inference of the selected cases takes FACTOR x longer
    slowdown_cases: tuple[str, ...] = ()  # case-id globs the slowdown applies to; empty: every case
    ab: ABConfig | None = None  # compare with a second variant in the same job instead of the baseline
    # A per-layer profile of every measured case, in a pass of its own after the gated trials (--no-profile: none),
    # and how many inferences it profiles (None: chosen from the suite's measuring budget, harness.run.session).
    profile: bool = True
    profile_iterations: int | None = None
