"""harness.history.store: runs appended to SQLite and to a real PostgreSQL server (tests/postgres.py) give the same
series; concurrent appends lose nothing; a killed append leaves no partial run; old schemas are migrated, newer
ones refused; detected change points replace their series' rows; a read-only store still reads; every unusable store
is one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from harness.core.errors import HarnessError
from harness.core.results import CaseResult, RunResults
from harness.history.changes import detect
from harness.history.schema import MIGRATIONS, SCHEMA_VERSION
from harness.history.store import HistoryStore, StoredChange, StoreReadOnly, normalize_url, parse_since, run_info
from harness.suite.load import load_suite
from tests.postgres import postgres_server, postgres_url  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[1]
KEY = "cpu-synthetic-2cpu__onnxruntime-1.23.2"


def synthetic_run(
    index: int, *, step_at: int | None = None, step: float = 0.0, key: str = KEY, shard: tuple[int, int] | None = None
) -> RunResults:
    """Run ``index`` of a nightly job over the example suite's cases: five latency trials per case with 2% log-normal
    noise around a fixed cost, ``step`` (e.g. 0.06) added from run ``step_at`` on. Seeded: the same index, the same
    numbers."""
    rng = np.random.default_rng(index)
    suite = load_suite(ROOT / "benchmarks/suites/zoo-cpu.yaml")
    environment = {
        "key": key,
        "date": f"2026-01-{1 + index // 24:02d}T{index % 24:02d}:00:00+00:00",
        "commit": {"id": f"{index:040x}", "branch": "main", "dirty": False},
        "harness_version": "0.1.0",
        "backend": {"name": "onnxruntime", "version": "1.23.2", "settings": {}},
    }
    record: dict[str, Any] = {"exit_status": 0, "gate": "passed", "finished": environment["date"], "host": "ci"}
    record["shard"] = {"index": shard[0], "count": shard[1], "items": []} if shard else None
    results = RunResults(environment=environment, suites={suite.name: "benchmarks/suites/zoo-cpu.yaml"}, runs=[record])
    for case in suite.cases():
        base = (8.0 if case.model.name == "resnet50" else 1.5) * case.batch_size**0.8
        level = base * (1 + step if step_at is not None and index >= step_at else 1.0)
        trials = [float(level * rng.lognormal(0.0, 0.02)) for _ in range(5)]
        median = float(np.median(trials))
        results.add(
            CaseResult(
                id=case.id,
                params=case.params(),
                verdict="unchanged",
                metrics={
                    "latency_median_ms": median,
                    "throughput_sps": case.batch_size * 1000.0 / median,
                    "build_time_ms": 120.0 + index,
                    "latency_p99_ms": float("nan") if index == 3 else median * 1.3,
                },
                trials={"latency_median_ms": trials},
                build={"build_time_ms": 120.0 + index, "cache_hit": False, "details": {"ignored": True}},
                telemetry={"status": "unavailable", "reason": "no NVML"},
            )
        )
    return results


def append_all(url: str, runs: list[RunResults], source: str = "import") -> list[bool]:
    with HistoryStore(url) as store:
        return [store.append(r, run_info(r, source)) for r in runs]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_forty_runs_give_the_same_series_in_sqlite_and_postgresql(tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    runs = [synthetic_run(i, step_at=25, step=0.06) for i in range(40)]
    sqlite_url = f"sqlite:///{tmp_path / 'history.db'}"
    assert append_all(sqlite_url, runs) == [True] * 40
    assert append_all(postgres_url, runs) == [True] * 40
    with HistoryStore(sqlite_url) as lite, HistoryStore(postgres_url) as pg:
        lite_series, pg_series = lite.series(), pg.series()
        assert lite.runs() == pg.runs()
    assert lite_series == pg_series
    ids = {(s.case_id, s.metric) for s in lite_series}
    assert ids == {
        (c, m)
        for c in ("resnet50-fp32-b1", "resnet50-fp32-b4", "squeezenet-fp32-b1", "squeezenet-fp32-b4")
        for m in ("latency_median_ms", "throughput_sps", "build_time_ms", "latency_p99_ms")
    }
    latency = next(s for s in lite_series if (s.case_id, s.metric) == ("resnet50-fp32-b1", "latency_median_ms"))
    assert [p.commit for p in latency.points] == [f"{i:040x}" for i in range(40)]  # oldest first
    assert latency.points[0].trials == tuple(runs[0].cases[0].trials["latency_median_ms"])
    assert latency.values == [r.cases[0].metrics["latency_median_ms"] for r in runs]
    assert np.median(latency.values[25:]) / np.median(latency.values[:25]) == pytest.approx(1.06, abs=0.02)
    p99 = next(s for s in lite_series if (s.case_id, s.metric) == ("resnet50-fp32-b1", "latency_p99_ms"))
    assert len(p99.points) == 39  # run 3's NaN is no point of a trend


def test_append_is_idempotent_by_run_id(store_url: str) -> None:
    run = synthetic_run(0)
    assert append_all(store_url, [run, run]) == [True, False]
    assert append_all(store_url, [run], source="pytest") == [False]  # the live append and a later import: one run
    with HistoryStore(store_url) as store:
        assert len(store.runs()) == 1
        assert all(len(s.points) == 1 for s in store.series())


def test_series_filters_and_a_new_baseline_key_starts_a_new_series(store_url: str) -> None:
    runs = [synthetic_run(i) for i in range(6)] + [synthetic_run(i, key="gpu-h200__tensorrt-10.13") for i in (6, 7)]
    append_all(store_url, runs)
    with HistoryStore(store_url) as store:
        latency = store.series("resnet50-*-b1", metric="latency_median_ms")
        assert [(s.case_id, s.baseline_key, len(s.points)) for s in latency] == [
            ("resnet50-fp32-b1", KEY, 6),
            ("resnet50-fp32-b1", "gpu-h200__tensorrt-10.13", 2),
        ]
        assert store.series("RESNET50-*", metric="latency_median_ms") == []  # globs match case like fnmatch
        assert store.series("resnet50_fp32-b1") == []  # '_' is no wildcard
        since = store.series("squeezenet-fp32-b4", "throughput_sps", since=parse_since("2026-01-01T04:00Z"))
        assert [len(s.points) for s in since] == [2, 2]
        assert store.series("*", suite="other") == []
        assert {s.baseline_key for s in store.series("*", baseline_key=KEY)} == {KEY}
        point = latency[0].points[-1]
        assert (point.verdict, point.branch, point.time) == ("unchanged", "main", "2026-01-01T05:00:00+00:00")


def test_run_ids_keep_shards_apart_and_follow_the_results(tmp_path: Path) -> None:
    one, two = synthetic_run(0, shard=(1, 2)), synthetic_run(0, shard=(2, 2))
    ids = run_info(one, "pytest").run_id, run_info(two, "pytest").run_id
    assert ids[0] != ids[1]
    assert ids[0].startswith("20260101T000000Z-shard1of2-") and ids[1].startswith("20260101T000000Z-shard2of2-")
    path = tmp_path / "results.json"
    one.write(path)
    assert run_info(RunResults.read(path), "import").run_id == ids[0]  # written and read back: the same run
    info = run_info(one, "merge")
    assert (info.commit, info.branch, info.time) == (f"{0:040x}", "main", "2026-01-01T00:00:00+00:00")
    bare = RunResults(environment={"date": "2026-02-03T04:05:06+02:00"})
    assert run_info(bare, "import").commit is None  # an imported file without git facts is not given the cwd's
    assert run_info(bare, "import").time == "2026-02-03T02:05:06+00:00"


def test_plain_paths_are_sqlite_files_and_postgresql_uses_psycopg(tmp_path: Path) -> None:
    assert normalize_url(str(tmp_path / "h.db")) == f"sqlite:///{tmp_path / 'h.db'}"
    assert normalize_url("postgresql://u:pw@db/h") == "postgresql+psycopg://u:pw@db/h"
    with HistoryStore(str(tmp_path / "sub" / "h.db")) as store:
        assert store.runs() == []
    assert (tmp_path / "sub" / "h.db").is_file()


# -- two processes at once, and a process killed halfway -----------------------------------------------------------
APPEND_FILES = """
import sys
from pathlib import Path
from harness.core.results import RunResults
from harness.history.store import HistoryStore, run_info
with HistoryStore(sys.argv[1]) as store:
    for path in sys.argv[2:]:
        results = RunResults.read(Path(path))
        assert store.append(results, run_info(results, "pytest"))
"""


def test_two_shards_appending_at_once_lose_nothing(store_url: str, tmp_path: Path) -> None:
    files = []
    for i in range(40):
        path = tmp_path / f"run{i}" / "results.json"
        synthetic_run(i, shard=(1 + i % 2, 2)).write(path)
        files.append(str(path))
    with HistoryStore(store_url):
        pass  # the schema exists before the race: the race is about runs (opening races are the next test's)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", APPEND_FILES, store_url, *files[k::2]], cwd=ROOT, stderr=subprocess.PIPE
        )
        for k in (0, 1)
    ]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()
    with HistoryStore(store_url) as store:
        assert len(store.runs()) == 40
        assert all(len(s.points) == 40 for s in store.series(metric="latency_median_ms"))


def test_two_processes_opening_a_new_store_at_once_migrate_it_once(store_url: str) -> None:
    opener = "import sys; from harness.history.store import HistoryStore; HistoryStore(sys.argv[1]).close()"
    children = [
        subprocess.Popen([sys.executable, "-c", opener, store_url], cwd=ROOT, stderr=subprocess.PIPE) for _ in range(3)
    ]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()
    assert _stored_version(store_url) == SCHEMA_VERSION


KILLED_APPEND = """
import sys, time
from pathlib import Path
import sqlalchemy as sa
from harness.core.results import RunResults
from harness.history.store import HistoryStore, run_info
store = HistoryStore(sys.argv[1])
results = RunResults.read(Path(sys.argv[2]))

@sa.event.listens_for(store.engine, "after_execute")
def stall(conn, clause, *args):
    if "cases" in str(clause):  # the run's row and its cases are written; its metric values are not
        Path(sys.argv[3]).touch()
        time.sleep(600)

store.append(results, run_info(results, "pytest"))
"""


def test_a_run_killed_mid_append_leaves_no_partial_run(store_url: str, tmp_path: Path) -> None:
    append_all(store_url, [synthetic_run(0)])
    path, halfway = tmp_path / "results.json", tmp_path / "halfway"
    synthetic_run(1).write(path)
    child = subprocess.Popen([sys.executable, "-c", KILLED_APPEND, store_url, str(path), str(halfway)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not halfway.exists():
            assert child.poll() is None, "the appending process ended before it was killed"
            assert time.monotonic() < deadline, "the append never got halfway"
            time.sleep(0.05)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    with HistoryStore(store_url) as store:
        assert [r.commit for r in store.runs()] == [f"{0:040x}"]
        with store.engine.connect() as conn:
            rows = [conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() for t in ("cases", "metric_values")]
        assert rows == [4, 16]  # run 0's four cases and their metrics only
        assert store.append(synthetic_run(1), run_info(synthetic_run(1), "import"))  # nothing left locked


# -- schema versions -------------------------------------------------------------------------------------------------
def _stored_version(url: str) -> int:
    engine = sa.create_engine(normalize_url(url))
    with engine.connect() as conn:
        version = int(conn.execute(sa.text("SELECT version FROM schema_version")).scalar_one())
    engine.dispose()
    return version


def test_a_store_of_schema_1_is_migrated_at_open_and_keeps_its_runs(store_url: str) -> None:
    engine = sa.create_engine(normalize_url(store_url))
    with engine.begin() as conn:
        MIGRATIONS[0](conn)
        conn.execute(sa.text("INSERT INTO schema_version (version) VALUES (1)"))
        conn.execute(
            sa.text(
                'INSERT INTO runs (run_id, time, "commit", branch, baseline_key, suites, environment, source) '
                "VALUES ('old', '2025-12-31T00:00:00+00:00', 'c0ffee', 'main', :key, '[\"zoo-cpu\"]', '{}', 'import')"
            ),
            {"key": KEY},
        )
        conn.execute(
            sa.text(
                "INSERT INTO cases (run_id, suite, case_id, params, status, verdict) "
                "VALUES ('old', 'zoo-cpu', 'resnet50-fp32-b1', '{}', 'passed', 'unchanged')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO metric_values (run_id, suite, case_id, metric, value, trials) "
                "VALUES ('old', 'zoo-cpu', 'resnet50-fp32-b1', 'latency_median_ms', 8.5, '[8.4, 8.6]')"
            )
        )
    engine.dispose()
    append_all(store_url, [synthetic_run(0)])  # opens the store: migrations 2 and 3 run first
    assert _stored_version(store_url) == SCHEMA_VERSION == 3
    with HistoryStore(store_url) as store:
        (series,) = store.series("resnet50-fp32-b1", metric="latency_median_ms")
        with store.engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT run_id, harness_version FROM runs ORDER BY time")).all()
    first = series.points[0]
    assert (first.run_id, first.value, first.trials) == ("old", 8.5, (8.4, 8.6))
    assert len(series.points) == 2
    assert [v[1] for v in versions] == [None, "0.1.0"]


def as_schema_2(url: str) -> None:
    """``url``'s store as harness 0.1 left it: no change_points table, schema version 2."""
    engine = sa.create_engine(normalize_url(url))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE change_points"))
        conn.execute(sa.text("UPDATE schema_version SET version = 2"))
    engine.dispose()


def test_a_store_of_schema_2_is_migrated_at_open_and_takes_change_points(store_url: str) -> None:
    append_all(store_url, [synthetic_run(i, step_at=10, step=0.1) for i in range(20)])
    as_schema_2(store_url)
    with HistoryStore(store_url) as store:
        assert _stored_version(store_url) == 3
        (series,) = store.series("resnet50-fp32-b1", metric="latency_median_ms")
        assert len(series.points) == 20  # the runs are kept
        (change,) = detect(series)
        store.replace_change_points([(series, [change])])
        (stored,) = store.change_points()
    assert stored.run_id == series.points[10].run_id and stored.change == pytest.approx(0.1, abs=0.03)


# -- change points ---------------------------------------------------------------------------------------------------
def test_detections_replace_their_series_rows_and_leave_the_others(store_url: str) -> None:
    append_all(store_url, [synthetic_run(i, step_at=12, step=0.08) for i in range(24)])
    with HistoryStore(store_url) as store:
        found = [(s, detect(s)) for s in store.series(metric="latency_median_ms")]
        assert [len(points) for _, points in found] == [1, 1, 1, 1]
        store.replace_change_points(found)
        stored = store.change_points()
        first, (_, [change]) = stored[0], found[0]
        assert first == StoredChange(
            *(found[0][0].suite, found[0][0].case_id, "latency_median_ms", KEY, change.run_id, change.time),
            *(change.commit_before, change.commit, change.before, change.after, change.change, change.p_value, True),
        )
        assert [(c.case_id, c.run_id) for c in stored] == [(s.case_id, s.points[12].run_id) for s, _ in found]
        # detection ran again and found nothing in the first series: its rows go, the others' stay
        store.replace_change_points([(found[0][0], [])])
        assert [c.case_id for c in store.change_points()] == [s.case_id for s, _ in found[1:]]
        assert [c.case_id for c in store.change_points("squeezenet-*-b4", metric="latency_median_ms")] == [
            "squeezenet-fp32-b4"
        ]
        assert store.change_points(metric="throughput_sps") == store.change_points(baseline_key="other") == []
        store.replace_change_points(found)  # the same detection again: the same rows, no duplicate key
        assert len(store.change_points()) == 4


def test_a_read_only_sqlite_store_reads_and_refuses_writes_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    append_all(str(path), [synthetic_run(i) for i in range(3)])
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    with HistoryStore(read_only) as store:
        (series,) = store.series("resnet50-fp32-b1", metric="latency_median_ms")
        with pytest.raises(StoreReadOnly, match=r"cannot take the change points: it is read-only \(attempt to write"):
            store.replace_change_points([(series, [])])
    as_schema_2(str(path))  # and one of an older schema: read as it is, never migrated
    with HistoryStore(read_only) as store:
        assert store.stored_version == 2 and len(store.runs()) == 3
        assert len(store.series("resnet50-fp32-b1", metric="latency_median_ms")[0].points) == 3
        assert store.change_points() == []
        message = r"cannot take the run: it is read-only and at schema 2 \(this harness writes 3\); open it once with"
        with pytest.raises(StoreReadOnly, match=message):
            store.append(synthetic_run(9), run_info(synthetic_run(9), "import"))
    assert _stored_version(str(path)) == 2
    with HistoryStore(str(path)) as store:  # opened writable, it is migrated
        assert store.stored_version == 3 and store.change_points() == []


def test_a_read_only_postgresql_session_reads_and_refuses_writes(postgres_url: str) -> None:  # noqa: F811
    append_all(postgres_url, [synthetic_run(i) for i in range(3)])
    read_only = postgres_url + "?options=-c%20default_transaction_read_only%3Don"
    with HistoryStore(read_only) as store:
        (series,) = store.series("resnet50-fp32-b1", metric="latency_median_ms")
        with pytest.raises(StoreReadOnly, match=r"it is read-only .*read-only transaction"):
            store.replace_change_points([(series, [])])
    as_schema_2(postgres_url)
    with HistoryStore(read_only) as store:
        assert store.stored_version == 2 and len(store.runs()) == 3 and store.change_points() == []
    assert _stored_version(postgres_url) == 2


def test_a_store_of_a_newer_harness_is_refused(store_url: str) -> None:
    HistoryStore(store_url).close()
    engine = sa.create_engine(normalize_url(store_url))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE schema_version SET version = 99"))
    engine.dispose()
    with pytest.raises(HarnessError, match=r"written by a newer harness \(schema 99; .*\); upgrade the harness"):
        HistoryStore(store_url)


# -- unusable stores: one line each ----------------------------------------------------------------------------------
def test_unusable_stores_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="not a database URL"):
        HistoryStore("postgresql://host:notaport/db")
    with pytest.raises(HarnessError, match="a mysql database is not supported"):
        HistoryStore("mysql://u@h/db")
    with pytest.raises(
        HarnessError,
        match=r"history store postgresql://u:\*\*\*@127\.0\.0\.1:1/x cannot be "
        r"opened: .*; check the URL and that the server is running",
    ):
        HistoryStore("postgresql://u:secret@127.0.0.1:1/x")  # the password is never shown
    text = tmp_path / "results.json"
    text.write_text('{"schema": "harness.results/1"}\n' * 200)
    with pytest.raises(HarnessError, match="file is not a database"):
        HistoryStore(str(text))
    lone = tmp_path / "other.db"
    engine = sa.create_engine(f"sqlite:///{lone}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE runs (x INTEGER)"))
    engine.dispose()
    with pytest.raises(HarnessError, match="holds tables that are not a harness history store"):
        HistoryStore(str(lone))


def test_a_reader_of_an_empty_postgresql_database_creates_no_tables(postgres_url: str) -> None:  # noqa: F811
    import sqlalchemy as sa

    with pytest.raises(HarnessError, match=r"/history_\w+: no history store there yet"):
        HistoryStore(postgres_url, create=False)
    engine = sa.create_engine(normalize_url(postgres_url))
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
    append_all(postgres_url, [synthetic_run(0)])  # a run appended: now it is a store to read
    with HistoryStore(postgres_url, create=False) as store:
        assert len(store.runs()) == 1
