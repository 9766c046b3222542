"""Where the run-to-run noise of a CPU case comes from on this runner: the process, or the host at that time.

Against a stored baseline the gate (harness.judge.gate) compares two runs, each measuring a case's trials within a few
seconds, so whatever differs between the two runs and is shared by all trials of one of them is invisible to its
statistics. Two causes are told apart here by measuring one case in blocks of gate trials (``trials`` trials on
fresh runners, the speed probe around each, as ``pytest --no-interleave`` measures a case), ``--gap-s`` apart,
alternately in this process and in a forked child (its own allocations, its own pages):

- if the process matters (memory placement, allocator state), the blocks of this one process agree with each other
  better than the children's blocks do, and a child's block is no closer to the parent's block measured next to
  it than to any other;
- if the host's state matters (neighbours, clocks, shared caches), blocks measured at about the same time agree,
  in one process or two, and blocks far apart do not, whichever process measured them.

It prints, for the parent's and the children's blocks: the spread (sd) of block medians, raw and at the speed
probe's pace, the median spread of trials inside a block, and the lag-1 autocorrelation of block medians; then the
correlation of each parent block with the child block measured next to it::

    python benchmarks/perf/drift_source.py benchmarks/suites/zoo-cpu.yaml --case squeezenet-fp32-b1 --blocks 30

On the 2-core development VM (zoo-cpu suite, 30 blocks a side, 4 s gaps) the parent's blocks spread as much as the
children's (squeezenet b4: 2.88% vs 2.83% sd, b1: 4.21% vs 4.51%), and a parent's block correlated 0.90 (b4) and
0.52 (b1) with the child's measured next to it: the spread is the host's, moving over seconds, not the
process's (docs/examples/calibration-dev-vm/). Fork needs a POSIX system.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", help="suite YAML file")
    parser.add_argument("--case", required=True, help="case id, e.g. squeezenet-fp32-b1")
    parser.add_argument("--blocks", type=int, default=30, help="blocks per side (default 30)")
    parser.add_argument("--gap-s", type=float, default=4.0, help="pause between block pairs, s (default 4)")
    parser.add_argument("--cache-dir", default=".harness-cache")
    args = parser.parse_args()
    if not hasattr(os, "fork"):
        print("needs os.fork (Linux or macOS)", file=sys.stderr)
        return 2

    from harness.core.results import CaseResult
    from harness.run.session import HarnessSession, RunConfig
    from harness.suite.load import load_suite

    session = HarnessSession(RunConfig(backend="onnxruntime", cache_dir=Path(args.cache_dir)))
    case = next((c for c in load_suite(args.suite).cases() if c.id == args.case), None)
    if case is None:
        print(f"no case {args.case} in {args.suite}; see `harness validate {args.suite}`", file=sys.stderr)
        return 2
    engine, feeds = session.build_case(case, session.backend_for(case.suite), CaseResult(id=case.id, params={}))
    spec = session.measure_spec(case.suite)

    def block() -> list[tuple[float, float]]:
        from harness.measure.loop import measure
        from harness.measure.trials import measure_rounds

        (trials,) = measure_rounds(
            [lambda: engine.runner(feeds)],
            spec,
            spec.trials,
            lambda _, runner, trial: measure(runner, trial, case.batch_size),
            cpu_time=True,
        )
        return [(float(np.median(m.latency_ms)), float(m.probe_ms or np.nan)) for m in trials]

    def in_child() -> list[tuple[float, float]]:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: measure, send, leave without running the parent's exit handlers
            os.close(read)
            with os.fdopen(write, "w") as out:
                json.dump(block(), out)
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as inp:
            data = inp.read()
        os.waitpid(pid, 0)
        return [tuple(t) for t in json.loads(data)]

    block()  # warm: first-run costs stay out of the figures
    parent: list[Any] = []
    child: list[Any] = []
    for i in range(args.blocks):
        order = (parent, child) if i % 2 == 0 else (child, parent)
        for side in order:
            side.append(block() if side is parent else in_child())
        time.sleep(args.gap_s)
        print(f"  block pair {i + 1}/{args.blocks}", file=sys.stderr, flush=True)

    def levels(blocks: list[Any], scaled: bool) -> np.ndarray:
        return np.array([np.median([np.log(t / p if scaled else t) for t, p in b]) for b in blocks])

    print(f"{case.id}: {args.blocks} blocks of {spec.trials} trials per side, {args.gap_s:g} s apart")
    for name, blocks in (("this process", parent), ("forked children", child)):
        raw, scaled = levels(blocks, False), levels(blocks, True)
        inside = np.median([np.std(np.log([t for t, _ in b]), ddof=1) for b in blocks])
        lag1 = np.corrcoef(raw[:-1], raw[1:])[0, 1]
        print(
            f"  {name:16s} block medians sd {raw.std(ddof=1):.2%} (at the probe's pace {scaled.std(ddof=1):.2%}); "
            f"trials inside a block sd {inside:.2%}; lag-1 autocorrelation {lag1:+.2f}"
        )
    paired = np.corrcoef(levels(parent, False), levels(child, False))[0, 1]
    print(f"  a parent's block vs the child's block measured next to it: correlation {paired:+.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
