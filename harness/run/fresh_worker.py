"""The child side of :mod:`harness.run.fresh`: ``python -m harness.run.fresh_worker REQUEST RESULT`` builds and
measures one case as the parent session would (same backend, options, engine cache and measuring settings) and
hands the measurements back."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any

from harness.core.measurement import Measurement
from harness.core.results import CaseResult
from harness.run.config import RunConfig
from harness.run.session import HarnessSession
from harness.suite.schema import Case


def _measure(config: RunConfig, case: Case, factor: int) -> tuple[int, int, list[Measurement]]:
    """In the child: build ``case`` and measure ``factor`` times the suite's trials as the parent session would
    (same backend, options, cache)."""
    session = HarnessSession(config)
    backend = session.backend_for(case.suite)
    engine, feeds = session.build_case(case, backend, CaseResult(id=case.id, params=case.params()))
    rounds = factor * session.measure_spec(case.suite).trials  # each as long as one of the gate's trials
    (trials,) = session.measure_trials(case, [(case, engine, feeds)], backend.uses_gpu, rounds=rounds)
    return os.getpid(), trials.batch_size, trials.measurements


def main(argv: list[str]) -> int:
    request, answer = Path(argv[0]), Path(argv[1])
    config, case, factor = pickle.loads(request.read_bytes())
    try:
        outcome: Any = _measure(config, case, factor)
    except Exception as exc:  # reported to the parent as one line; it falls back to its own process
        print(f"{case.id}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    answer.write_bytes(pickle.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
