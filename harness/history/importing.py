"""Back-filling the history store from saved results (CI artifacts, old report folders).

Every file is read and checked before the first is appended, so an unreadable file among many stops the import with
one line and nothing half done. Each run is then appended on its own (one transaction each) under the id its own
facts give it (:func:`harness.history.store.run_info`): importing the same files again, or a file a live run already
appended, adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness.core.errors import HarnessError
from harness.core.fsio import dumps_json
from harness.core.results import RunResults, results_files
from harness.history.store import HistoryStore, run_info

__all__ = ["ImportOutcome", "import_results", "read_runs", "results_files"]


@dataclass
class ImportOutcome:
    imported: list[tuple[Path, str]] = field(default_factory=list)  # (file, run id) appended now
    present: list[tuple[Path, str]] = field(default_factory=list)  # (file, run id) the store already held


def read_runs(inputs: Iterable[str | Path]) -> list[tuple[Path, RunResults]]:
    """Every results file below ``inputs``, read and checked, before a store is touched: a missing or unreadable
    file, or a merged file beside its parts, is one line and no store is created for it."""
    runs = [(path, RunResults.read(path)) for path in results_files(inputs)]
    _refuse_overlaps(runs)
    return runs


def import_results(
    store: HistoryStore, inputs: Iterable[str | Path], runs: list[tuple[Path, RunResults]] | None = None
) -> ImportOutcome:
    """Append every results file below ``inputs`` (or the ``runs`` :func:`read_runs` read from them) to ``store``
    (see the module docstring)."""
    runs = read_runs(inputs) if runs is None else runs
    outcome = ImportOutcome()
    for path, results in runs:
        info = run_info(results, "import")
        (outcome.imported if store.append(results, info) else outcome.present).append((path, info.run_id))
    return outcome


def _refuse_overlaps(runs: list[tuple[Path, RunResults]]) -> None:
    """Refuse a merged results file imported beside its own parts (``harness merge`` output and the shard files in
    one artifact folder): their cases would be counted twice in every series."""
    sessions = [(path, {_session(r) for r in results.runs if isinstance(r, dict)}) for path, results in runs]
    for path, mine in sessions:
        for other, theirs in sessions:
            if mine and mine < theirs:  # equal sets are copies of one run: one id, stored once
                raise HarnessError(
                    f"{path} and {other} hold the same pytest session ({other} merges it): import the merged file "
                    "or its parts, not both"
                )


def _session(record: dict[str, object]) -> str:
    """A session record as results files keep it, without the ``source`` that ``harness merge`` adds."""
    return dumps_json({k: v for k, v in record.items() if k != "source"})
