"""harness.history.importing: results files and artifact folders back-filled into SQLite and PostgreSQL give the
same series; importing again adds nothing; an unusable file stops the import before anything is stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.core.results import RunResults
from harness.history.importing import import_results, results_files
from harness.history.store import HistoryStore
from tests.postgres import postgres_server, postgres_url  # noqa: F401 (fixtures)
from tests.test_history_store import synthetic_run


def artifacts(root: Path, count: int = 40, step_at: int | None = None, step: float = 0.0) -> Path:
    """``count`` nightly runs as CI leaves them: one folder per run holding its results.json."""
    for i in range(count):
        synthetic_run(i, step_at=step_at, step=step).write(root / f"nightly-{i:02d}" / "results.json")
    return root


def test_forty_runs_imported_into_sqlite_and_postgresql_give_the_same_series(
    tmp_path: Path,
    postgres_url: str,  # noqa: F811
) -> None:
    folder = artifacts(tmp_path / "artifacts", step_at=25, step=0.06)
    series = []
    for url in (f"sqlite:///{tmp_path / 'history.db'}", postgres_url):
        with HistoryStore(url) as store:
            outcome = import_results(store, [folder])
            assert (len(outcome.imported), len(outcome.present)) == (40, 0)
            series.append(store.series("*", metric="latency_median_ms"))
    assert series[0] == series[1]
    assert [len(s.points) for s in series[0]] == [40, 40, 40, 40]
    resnet = series[0][0]
    before, after = resnet.values[:25], resnet.values[25:]
    assert min(after) > max(before) * 0.99  # the +6% step sits at run 25 in the stored order
    assert resnet.points[25].commit == f"{25:040x}"


def test_importing_again_adds_nothing(tmp_path: Path) -> None:
    folder = artifacts(tmp_path / "artifacts", count=3)
    with HistoryStore(str(tmp_path / "h.db")) as store:
        first = import_results(store, [folder])
        again = import_results(store, [folder, folder / "nightly-01" / "results.json"])
        assert [run_id for _, run_id in again.present] == [run_id for _, run_id in first.imported]
        assert again.imported == []
        assert len(store.runs()) == 3


def test_an_unusable_file_stops_the_import_before_anything_is_stored(tmp_path: Path) -> None:
    folder = artifacts(tmp_path / "artifacts", count=3)
    (folder / "nightly-02" / "results.json").write_text('{"schema": "harness.results/1", "cases": [{"id": 3}]}')
    with HistoryStore(str(tmp_path / "h.db")) as store:
        with pytest.raises(HarnessError, match=r"nightly-02/results.json: case #1: no case 'id'"):
            import_results(store, [folder])
        assert store.runs() == []


def test_a_merged_file_beside_its_own_shards_is_refused(tmp_path: Path) -> None:
    one, two = synthetic_run(0, shard=(1, 2)), synthetic_run(1, shard=(2, 2))
    one.write(tmp_path / "shard-1" / "results.json")
    two.write(tmp_path / "shard-2" / "results.json")
    merged = RunResults(environment=one.environment, suites=one.suites, cases=one.cases[:2] + two.cases[2:])
    merged.runs = [{**one.runs[0], "source": "shard-1"}, {**two.runs[0], "source": "shard-2"}]
    merged.write(tmp_path / "merged" / "results.json")
    with HistoryStore(str(tmp_path / "h.db")) as store:
        with pytest.raises(HarnessError, match=r"hold the same pytest session .*import the merged file or its parts"):
            import_results(store, [tmp_path])
        assert store.runs() == []
        assert len(import_results(store, [tmp_path / "merged"]).imported) == 1


def test_results_files_of_folders_and_files(tmp_path: Path) -> None:
    folder = artifacts(tmp_path / "a", count=2)
    file = folder / "nightly-00" / "results.json"
    assert results_files([folder, file]) == [file, folder / "nightly-01" / "results.json"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match=r"no results\.json below this folder"):
        results_files([tmp_path / "empty"])
    with pytest.raises(HarnessError, match="no such results file or folder"):
        results_files([tmp_path / "missing.json"])
