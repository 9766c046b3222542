"""Merge the results of several pytest sessions (CI shards, pytest-xdist workers) into one results file.

Merging is where a lost shard would otherwise go unnoticed, so it checks what each part says about itself: every
session records in ``runs`` its shard (``I/N`` and the items it owned), its pytest exit status and its gate outcome.
The merged run's gate is ``incomplete`` when something that should be there is not: a shard, a case a session
selected, or a session's end (a part without a run record was written by a session that was killed, or by an
xdist worker whose controller died, so nothing proves it ran every case it had); it is ``failed`` when a part
failed its gate or a case failed. Cases are never silently dropped or overwritten: two parts holding the same case
is an error. The command (``harness merge``: files, report, exit status) is harness.cli.merge.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.results import RunResults, results_files
from harness.judge.baselines import BaselineStore


@dataclass
class MergeOutcome:
    results: RunResults
    sources: list[str]
    problems: list[str] = field(default_factory=list)  # reasons the merged run fails (missing shard, failed gate)
    incomplete: list[str] = field(default_factory=list)  # the problems that say something is missing

    @property
    def gate_passed(self) -> bool:
        return not self.problems

    @property
    def gate(self) -> str:
        """``incomplete`` when a part, a session's end or a case is missing; ``failed``; or ``passed``."""
        return "incomplete" if self.incomplete else "failed" if self.problems else "passed"


def find_results(inputs: Iterable[str | Path], exclude: Path | None = None) -> list[Path]:
    """Results files named on the command line (a folder: every ``results.json`` below it), less ``exclude``: the
    merged file itself when it lies among them."""
    found = results_files(inputs, hint="pass the downloaded shard artifacts")
    unique = [p for p in found if exclude is None or p.resolve() != exclude.resolve()]
    if not unique:
        raise HarnessError("nothing to merge: every input is the output file itself; pass the shard results")
    return unique


def merge(parts: Sequence[tuple[str, RunResults]], expect_shards: int | None = None) -> MergeOutcome:
    """Combine ``(source name, results)`` pairs; raise for parts that cannot belong to one run."""
    if not parts:
        raise HarnessError("nothing to merge; pass at least one results file")
    keys: dict[Any, str] = {}
    for name, part in parts:
        if part.cases or part.environment.get("key"):
            keys.setdefault(part.environment.get("key"), name)
    if len(keys) > 1:
        listed = ", ".join(f"{key} ({name})" for key, name in keys.items())
        raise HarnessError(
            f"the parts ran under different baseline keys: {listed}; give the shards' runners one GPU model and "
            "backend (runner labels), or merge each key on its own"
        )
    environment = next((p.environment for _, p in parts if p.cases), parts[0][1].environment)
    merged = RunResults(environment=dict(environment))
    owner: dict[str, str] = {}
    for name, part in parts:
        merged.suites.update(part.suites)
        for case in part.cases:
            if case.id in owner:
                raise HarnessError(
                    f"case '{case.id}' is in both {owner[case.id]} and {name}; the shards overlap: run every shard "
                    "with the same --shard N, the same suites and the same --shard-durations file"
                )
            owner[case.id] = name
            merged.cases.append(case)
        merged.runs.extend({**run, "source": run.get("source", name)} for run in part.runs)
    merged.cases.sort(key=_matrix_order)  # shards interleave the matrix; a report reads better in its order
    unfinished = [name for name, part in parts if not part.runs]
    outcome = MergeOutcome(results=merged, sources=[name for name, _ in parts])
    outcome.incomplete = missing(merged, expect_shards, unfinished)
    outcome.problems = outcome.incomplete + failures(merged)
    return outcome


def check(results: RunResults, expect_shards: int | None = None, unfinished: Sequence[str] = ()) -> list[str]:
    """Why a merged run must not pass: what is missing (:func:`missing`), then what failed (:func:`failures`)."""
    return missing(results, expect_shards, unfinished) + failures(results)


def missing(results: RunResults, expect_shards: int | None = None, unfinished: Sequence[str] = ()) -> list[str]:
    """What the merged run lacks: shards, cases a session selected but never recorded, and the ends of the
    sessions in ``unfinished`` (sources without a run record)."""
    problems: list[str] = []
    shards = [run["shard"] for run in results.runs if isinstance(run.get("shard"), dict)]
    counts = {int(s["count"]) for s in shards}
    if expect_shards is not None:
        counts.add(expect_shards)
    if len(counts) > 1:
        problems.append(
            f"the parts were cut into different shard counts ({', '.join(map(str, sorted(counts)))}); "
            "use one --shard I/N count for every job"
        )
    elif counts:
        count = counts.pop()
        present = {int(s["index"]) for s in shards}
        absent = [i for i in range(1, count + 1) if i not in present]
        if absent:
            problems.append(
                f"no results from shard {', '.join(f'{i}/{count}' for i in absent)}: the job failed before "
                "writing results or its artifact was not downloaded; see that job's log"
            )
    have = {case.id for case in results.cases}
    lost = sorted({item for s in shards for item in s.get("items", []) if item not in have})
    if lost:
        problems.append(f"{len(lost)} case(s) selected by a shard have no result: {_some(lost)}")
    selected = {item for run in results.runs for item in run.get("items") or () if isinstance(item, str)}
    unrecorded = sorted(selected - have - set(lost))
    if unrecorded:
        problems.append(f"{len(unrecorded)} case(s) selected by a session have no result: {_some(unrecorded)}")
    if unfinished:
        problems.append(
            f"{_some(list(unfinished), 4)}: written by a session that did not finish (no run record: killed, or an "
            "xdist worker whose controller died), so cases it had not reached may be missing; rerun those cases"
        )
    return problems


def failures(results: RunResults) -> list[str]:
    """What failed in the merged run: a part's gate, or a case."""
    problems: list[str] = []
    for run in results.runs:
        if run.get("gate") == "failed":
            shard = run.get("shard")
            where = f"shard {shard['index']}/{shard['count']}" if isinstance(shard, dict) else "a session"
            problems.append(
                f"{where} ({run.get('source', '?')}) failed its gate: pytest exit status {run.get('exit_status')}"
            )
    bad = [c.id for c in results.cases if c.status in ("failed", "error")]
    if bad:
        problems.append(f"{len(bad)} case(s) failed: {_some(bad)}")
    return problems


def _matrix_order(case: Any) -> tuple[Any, ...]:
    p = case.params
    batch = p.get("batch_size")
    return (
        str(p.get("suite", "")),
        str(p.get("model", "")),
        str(p.get("precision", "")),
        batch if isinstance(batch, int) else 0,
        str(p.get("shape") or ""),
        case.id,
    )


def _some(ids: list[str], limit: int = 8) -> str:
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def write_baselines(results: RunResults, baseline_dir: Path) -> list[Path]:
    """Record every measured case as the new baseline under the results' key, one file per suite (atomic)."""
    key = results.environment.get("key")
    if not key:
        raise HarnessError("the results hold no baseline key; they were not written by a benchmark run")
    store = BaselineStore(Path(baseline_dir), str(key))
    by_suite: dict[str, list[Any]] = {}
    for case in results.cases:
        if case.metrics and case.status != "error":
            by_suite.setdefault(str(case.params.get("suite")), []).append(case)
    return [store.update(suite, cases, results.environment) for suite, cases in sorted(by_suite.items())]
