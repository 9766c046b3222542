"""A case measured in a new process: the confirmation of a GPU case that looks regressed, and the extra processes a
GPU baseline is recorded from.

On a GPU each process keeps a level of its own for its lifetime: two healthy processes measure the same engine
further apart than the trials inside one do, and none of clocks, power, algorithm selection, memory placement or
warm-up explained it (figures in docs/evidence/gpu-gate-h200.md). A gate whose trials
and confirmation come from one process cannot see that offset, so it confirms it as a regression. Measured again in
a new process, the confirmation draws a new offset: a false alarm then needs two processes to land high against the
baseline's, while a real slowdown shows in every process. This is the re-measurement on a fresh machine state that
continuous-benchmarking services make before they call a change real (e.g. the repeated, separately started runs of
Kalibera & Jones, "Rigorous Benchmarking in Reasonable Time", ISMM 2013: the variation between executions is its own
level of the experiment and needs its own repetitions).

The baseline's own process draws an offset too, and a baseline recorded in a process that ran fast makes every later
healthy process look slower, confirmation or not. So on GPU backends ``--update-baselines`` pools the suite's trials
from :data:`BASELINE_PROCESSES` processes (the run's own and new ones): the rank test then weighs a change against
the spread between processes, not against one process's level (the calibrations behind both choices are in
docs/evidence/gpu-gate-h200-fresh-process.md).

The child process is ``python -m harness.run.fresh_worker REQUEST RESULT``: it unpickles the run's configuration, the
case and how many times the suite's trials to measure, builds the engine (the engine cache makes that a load for
TensorRT), measures those trials exactly as the parent would and pickles the measurements back. The files are the
parent's own, in a private temporary folder.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import harness
from harness.core.errors import HarnessError
from harness.measure.trials import TrialSet
from harness.run.config import RunConfig
from harness.suite.schema import Case

CONFIRM_IN = ("auto", "same-process", "fresh-process")  # auto: a fresh process for GPU backends
# The new process measures this many times the suite's trials. Its offset is drawn once for all of them, so more
# trials do not average it away; they give the rank test against the baseline's trials the resolution to tell a real
# change in a noisy process from that noise: 3 against 3 trials has one arrangement at p <= 0.05, 6 against 3 has
# three (docs/evidence/gpu-gate-h200.md). Paid only by a case that looks regressed.
TRIALS_FACTOR = 2
# Processes a GPU baseline's trials come from (the run's own and new ones), each measuring the suite's trials;
# --baseline-processes overrides it. The smallest number that met the false-alarm target in every calibration.
BASELINE_PROCESSES = 3
TIMEOUT_S = 1800.0  # a child that neither finishes nor fails within this is stopped; the parent then measures itself


def confirms_in_fresh_process(config: RunConfig, uses_gpu: bool) -> bool:
    """Whether a case that looks regressed is measured again in a new process (``--confirm-in``)."""
    return config.confirm_in == "fresh-process" or (config.confirm_in == "auto" and uses_gpu)


def baseline_processes(config: RunConfig, uses_gpu: bool) -> int:
    """How many processes a recorded baseline's trials come from (``--baseline-processes``; by default
    :data:`BASELINE_PROCESSES` on GPU backends, 1 otherwise: on a CPU the host's drift is shared by every process)."""
    if config.baseline_processes is not None:
        return config.baseline_processes
    return BASELINE_PROCESSES if uses_gpu else 1


def measure_in_fresh_process(config: RunConfig, case: Case, factor: int = TRIALS_FACTOR) -> tuple[TrialSet, int]:
    """``factor`` times the suite's trials of ``case`` measured by a new Python process, and that process's id;
    raises :class:`HarnessError` with the child's last line when it could not measure (the caller then measures in
    its own process, or with fewer processes, and says so)."""
    with tempfile.TemporaryDirectory(prefix="harness-fresh-") as tmp:
        request, answer = Path(tmp) / "request.pkl", Path(tmp) / "result.pkl"
        request.write_bytes(pickle.dumps((config, case, factor)))
        command = [sys.executable, "-m", "harness.run.fresh_worker", str(request), str(answer)]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False, env=_same_harness()
            )
        except subprocess.TimeoutExpired:
            raise HarnessError(f"the new process did not finish within {TIMEOUT_S:g} s") from None
        except OSError as exc:  # no interpreter to start, no memory for a process
            raise HarnessError(f"{command[0]}: {exc.strerror or exc}") from None
        if done.returncode != 0 or not answer.is_file():
            lines = [line for line in (done.stderr or done.stdout or "").splitlines() if line.strip()]
            raise HarnessError(lines[-1] if lines else f"the new process exited with status {done.returncode}")
        pid, batch_size, measurements = pickle.loads(answer.read_bytes())
    return TrialSet(batch_size, list(measurements)), pid


def _same_harness() -> dict[str, str]:
    """The environment of the child: this one, with this harness first on the import path, so the child runs the
    code the parent runs (a checkout, not whatever copy is installed)."""
    here = str(Path(harness.__file__).resolve().parents[1])
    paths = [here, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != here]]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
