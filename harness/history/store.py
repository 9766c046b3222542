"""The history store: every run's cases in one database, SQLite for one machine or PostgreSQL for a team.

Continuous-benchmarking tools keep what a single comparison forgets (asv: JSON per machine and commit; Conbench:
PostgreSQL; Bencher: SQLite); this store keeps, per run, its git facts and baseline key, and per case its parameters,
verdict, accuracy, telemetry flags, build metrics and every metric with its per-trial values, so
:meth:`HistoryStore.series` can answer "since when?"; and per series the change points its last detection found
(:meth:`HistoryStore.replace_change_points`), for dashboards to read with SQL.

Through SQLAlchemy Core, one code path for both databases. One run is one transaction: concurrent shards both land,
and a run killed halfway leaves nothing behind. SQLite write transactions start with ``BEGIN IMMEDIATE`` (after
SQLAlchemy's recipe for pysqlite), so two writers queue on the database lock instead of failing with "database is
locked" when both try to upgrade a read lock.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from harness.core.errors import HarnessError
from harness.core.fsio import dumps_json
from harness.core.results import CaseResult, RunResults
from harness.history.series import Point, Series

if TYPE_CHECKING:
    import sqlalchemy as sa

    from harness.history.changes import ChangePoint

DEFAULT_URL = "sqlite:///.harness-history.db"
ENV_VAR = "HARNESS_HISTORY"  # the --history default of every command and of the pytest plugin
SOURCES = ("pytest", "merge", "import")
BUSY_TIMEOUT_S = 120.0  # how long an SQLite writer waits for another one's transaction (a run is milliseconds)
CONNECT_TIMEOUT_S = 10  # a PostgreSQL server that does not answer in this time is reported, not waited on
_MIGRATION_LOCK = 0x6861726E657373  # pg_advisory_xact_lock key: one process migrates a new store at a time
_CHANGE_POINTS_LOCK = _MIGRATION_LOCK + 1  # one detection replaces change points at a time (see replace_change_points)
_SQLITE_READONLY = 8  # SQLite's primary result code for a write to a read-only database (low byte of extended codes)
_PG_REFUSED_WRITES = frozenset({"25006", "42501"})  # SQLSTATE read_only_sql_transaction, insufficient_privilege


_Query = TypeVar("_Query", bound="sa.Select[Any]")


class StoreReadOnly(HarnessError):
    """The store can be read but refuses writes (a read-only file or URI, a read-only role or transaction)."""


@dataclass(frozen=True)
class StoredChange:
    """A row of the ``change_points`` table: a change point of the series (suite, case, metric, baseline key), as
    :class:`harness.history.changes.ChangePoint` holds it less its position in the series."""

    suite: str
    case_id: str
    metric: str
    baseline_key: str
    run_id: str
    time: str
    commit_before: str | None
    commit: str | None
    before: float
    after: float
    change: float
    p_value: float
    worse: bool


@dataclass(frozen=True)
class RunInfo:
    """One run as the store knows it: ``time`` is ISO 8601 UTC (when the run started), ``source`` one of
    :data:`SOURCES`."""

    run_id: str
    time: str
    commit: str | None
    branch: str | None
    source: str


def run_info(results: RunResults, source: str) -> RunInfo:
    """The run facts of a results file: its id, start time and git commit and branch.

    The id is derived from the file's own facts (environment, session records with their shard, case ids), so
    appending the same results twice, live and later by import, stores them once, and the shards of one CI run
    (another shard record each) never collide. Commit and branch are those recorded in the results; a live run
    that recorded none (not a git checkout) takes them from ``GITHUB_SHA`` / ``GITHUB_REF_NAME`` or ``git``."""
    if source not in SOURCES:
        raise ValueError(f"source {source!r}: one of {', '.join(SOURCES)}")
    env = results.environment
    finished = [r.get("finished") for r in results.runs if isinstance(r, dict)]
    time = _utc_iso(env.get("date")) or next((t for t in map(_utc_iso, finished) if t), None)
    recorded = env.get("commit")
    commit: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    if not commit.get("id") and source != "import":
        from harness.machine.environment import git_commit

        commit = git_commit()
    facts = {
        "environment": env,
        "suites": sorted(results.suites),
        "runs": [{k: v for k, v in r.items() if k != "source"} for r in results.runs if isinstance(r, dict)],
        "cases": sorted(c.id for c in results.cases),
    }
    digest = hashlib.sha256(dumps_json(facts).encode("utf-8")).hexdigest()[:16]
    stamp = (time or "0000-00-00T00:00:00").replace("-", "").replace(":", "")[:15] + "Z"
    return RunInfo(
        run_id="-".join([stamp, *_shard_tags(results.runs), digest]),
        time=time or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        commit=commit.get("id") or None,
        branch=commit.get("branch") or None,
        source=source,
    )


def _shard_tags(records: list[dict[str, Any]]) -> list[str]:
    shards = [r["shard"] for r in records if isinstance(r, dict) and isinstance(r.get("shard"), dict)]
    return [f"shard{s.get('index')}of{s.get('count')}" for s in shards[:1]] if len(shards) == 1 else []


def _utc_iso(text: Any) -> str | None:
    """``text`` (ISO 8601; naive means UTC) as ISO 8601 UTC to the second, or None when it is not a time."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def parse_since(text: str) -> str:
    """A ``--since`` value (``2026-01-31`` or an ISO 8601 time) as the store's time text."""
    moment = _utc_iso(text)
    if moment is None:
        raise HarnessError(f"--since {text}: not a date; give YYYY-MM-DD or an ISO 8601 time (2026-01-31T12:00Z)")
    return moment


def normalize_url(url: str) -> str:
    """A ``--history`` value as an SQLAlchemy URL: a plain path is an SQLite file, ``postgresql://`` uses psycopg 3."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def record_run(store: HistoryStore, results: RunResults, source: str) -> str:
    """Append ``results`` (a run of ``source``) to ``store``; the line that says what happened."""
    info = run_info(results, source)
    done = store.append(results, info)
    return f"history: run {info.run_id} {'appended to' if done else 'already in'} {store.display}"


class HistoryStore:
    """A history database opened (and migrated to this harness's schema) at ``url``: ``sqlite:///path.db``,
    ``postgresql://user@host/db`` or a plain path (an SQLite file). Also a context manager that closes it.

    Every way the database can be unusable (a bad URL, a server that does not answer, a file that is not a
    database, a store written by a newer harness) is one :class:`HarnessError` line. ``create=False`` is for
    commands that only read what runs appended (show, detect, plot, trends): a store that does not exist yet, an
    absent SQLite file or a database without the harness's tables, is that line too, and nothing is created (a
    mistyped path would otherwise leave an empty database behind and read as "no series").
    """

    def __init__(self, url: str, *, create: bool = True):
        import sqlalchemy as sa

        from harness.history.schema import SCHEMA_VERSION

        self.schema_version = SCHEMA_VERSION
        self.stored_version = SCHEMA_VERSION  # lower only for a read-only store of an older schema, read as it is
        try:
            self.url = sa.make_url(normalize_url(url))
        except (sa.exc.ArgumentError, ValueError):
            raise HarnessError(
                f"--history {url}: not a database URL; give sqlite:///PATH.db, postgresql://USER@HOST/DB or a file path"
            ) from None
        # as the user wrote it, password hidden (CI logs are public); SQLAlchemy's rendering also escapes the ':' of
        # an SQLite file: URI, so a URL without a password is shown verbatim
        written = sa.make_url(url) if "://" in url else self.url
        self.display = (
            url if "://" in url and written.password is None else written.render_as_string(hide_password=True)
        )
        self.create = create
        self._refuse_absent_file()
        self.engine = self._create_engine(self.url)
        with self._errors("cannot be opened"):
            self._migrate()

    def _absent(self) -> HarnessError:
        return HarnessError(
            f"{self.display}: no history store there yet; runs are appended by pytest --history URL, "
            "harness merge --history URL or harness history import RESULTS --history URL"
        )

    def _refuse_absent_file(self) -> None:
        """``create=False``: an SQLite file that does not exist is refused before SQLite would create it."""
        if self.create or self.url.get_backend_name() != "sqlite" or self.url.query.get("uri"):
            return
        database = self.url.database
        if database and database != ":memory:" and not Path(database).is_file():
            raise self._absent()

    # -- opening ----------------------------------------------------------------------------------------------------
    def _create_engine(self, url: sa.URL) -> sa.Engine:
        import sqlalchemy as sa

        backend = url.get_backend_name()
        if backend == "sqlite":
            # a file: URI (uri=true, e.g. mode=ro) names an existing file; its "folder" is no path to create
            if url.database and url.database != ":memory:" and not url.query.get("uri"):
                folder = Path(url.database).parent
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise HarnessError(f"{self.display}: folder {folder} cannot be created ({exc.strerror})") from None
            engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
            sa.event.listen(engine, "connect", _sqlite_connect)
            sa.event.listen(engine, "begin", _sqlite_begin)
            return engine
        if backend == "postgresql":
            try:
                return sa.create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
            except ModuleNotFoundError as exc:
                raise HarnessError(
                    f"{self.display}: the PostgreSQL driver is not installed ({exc.name}); "
                    "pip install 'trt-perf-harness[postgres]'"
                ) from None
        raise HarnessError(
            f"--history {self.display}: a {backend} database is not supported; use sqlite:///PATH.db or postgresql://"
        )

    def _migrate(self) -> None:
        """Apply the migrations this store lacks, in one write transaction; a PostgreSQL advisory lock, or SQLite's
        ``BEGIN IMMEDIATE``, makes concurrent openers wait for the first, which then finds nothing left to do. A
        store already up to date is only read (a read-only copy of one opens); a read-only store of an older schema
        is read as it is (its runs and series), and refuses writes with a line saying so."""
        import sqlalchemy as sa

        from harness.history.schema import MIGRATIONS, schema_version

        with self.engine.connect() as conn:
            self.stored_version = self._checked_version(conn)
        if self.stored_version == self.schema_version:
            return
        if self.stored_version == 0 and not self.create:
            self.close()
            raise self._absent()
        try:
            with self._writing() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
                version = self._checked_version(conn)
                if version < self.schema_version:
                    for migration in MIGRATIONS[version:]:
                        migration(conn)
                    conn.execute(schema_version.delete())
                    conn.execute(schema_version.insert(), [{"version": self.schema_version}])
        except sa.exc.DBAPIError as exc:
            if self.stored_version == 0 or not _write_refused(exc):  # nothing to read, or not a matter of rights
                raise
            return
        self.stored_version = self.schema_version

    def _checked_version(self, conn: sa.Connection) -> int:
        """The store's schema version; a newer one than this harness knows is refused."""
        version = self._stored_version(conn)
        if version > self.schema_version:
            raise HarnessError(
                f"{self.display}: written by a newer harness (schema {version}; this one reads up to "
                f"{self.schema_version}); upgrade the harness"
            )
        return version

    def _require_current(self, doing: str) -> None:
        """Refuse a write to a read-only store left at an older schema (its tables lack what the write needs)."""
        if self.stored_version < self.schema_version:
            raise StoreReadOnly(
                f"history store {self.display} {doing}: it is read-only and at schema {self.stored_version} (this "
                f"harness writes {self.schema_version}); open it once with write access to migrate it"
            )

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sa.Connection]:
        """A write transaction: on SQLite it takes the write lock at its start (see :func:`_sqlite_begin`)."""
        with self.engine.connect() as conn:
            conn.execution_options(history_write=True)
            with conn.begin():
                yield conn

    def _stored_version(self, conn: sa.Connection) -> int:
        import sqlalchemy as sa

        from harness.history.schema import schema_version

        tables = set(sa.inspect(conn).get_table_names())
        if "schema_version" not in tables:
            if tables & {"runs", "cases", "metric_values"}:
                raise HarnessError(
                    f"{self.display}: holds tables that are not a harness history store; give another database"
                )
            return 0
        return int(conn.execute(sa.select(schema_version.c.version)).scalar() or 0)

    # -- writing ----------------------------------------------------------------------------------------------------
    def append(self, results: RunResults, run: RunInfo) -> bool:
        """Store ``results`` as ``run`` in one transaction; False (and nothing written) when the run is stored."""
        import sqlalchemy as sa

        from harness.history.schema import cases, metric_values, runs

        self._require_current("cannot take the run")
        case_rows = [_case_row(run.run_id, results, case) for case in results.cases]
        value_rows = [row for case in results.cases for row in _value_rows(run.run_id, results, case)]
        with self._errors("cannot take the run"):
            try:
                with self._writing() as conn:
                    if self._stored(conn, run.run_id):
                        return False
                    conn.execute(runs.insert(), [_run_row(results, run)])
                    if case_rows:
                        conn.execute(cases.insert(), case_rows)
                    if value_rows:
                        conn.execute(metric_values.insert(), value_rows)
            except sa.exc.IntegrityError:
                with self.engine.connect() as conn:  # a concurrent append of this very run got there first
                    if self._stored(conn, run.run_id):
                        return False
                raise
        return True

    def replace_change_points(self, detections: Sequence[tuple[Series, Sequence[ChangePoint]]]) -> None:
        """Store what a detection found, in one transaction: each series' rows are replaced by its change points
        (none: its rows are deleted), so the table says what the latest detection over the whole series found.
        Series not named are left as they are. :class:`StoreReadOnly` where the store refuses writes."""
        import sqlalchemy as sa

        from harness.history.schema import change_points as table

        self._require_current("cannot take the change points")
        rows = [_change_row(series, point) for series, points in detections for point in points]
        with self._errors("cannot take the change points"):
            try:
                with self._writing() as conn:
                    if conn.dialect.name == "postgresql":  # two detections at once: the second replaces the first's
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHANGE_POINTS_LOCK})
                    for series, _ in detections:
                        conn.execute(table.delete().where(*_series_match(table, series)))
                    if rows:
                        conn.execute(table.insert(), rows)
            except sa.exc.DBAPIError as exc:
                if _write_refused(exc):
                    cause = _first_line(exc)
                    raise StoreReadOnly(
                        f"history store {self.display} cannot take the change points: it is read-only ({cause})"
                    ) from None
                raise

    @staticmethod
    def _stored(conn: sa.Connection, run_id: str) -> bool:
        import sqlalchemy as sa

        from harness.history.schema import runs

        return conn.execute(sa.select(runs.c.run_id).where(runs.c.run_id == run_id)).first() is not None

    # -- reading ----------------------------------------------------------------------------------------------------
    def runs(self) -> list[RunInfo]:
        """Every stored run, oldest first."""
        import sqlalchemy as sa

        from harness.history.schema import runs

        query = sa.select(runs.c.run_id, runs.c.time, runs.c.commit, runs.c.branch, runs.c.source)
        with self._errors("cannot be read"), self.engine.connect() as conn:
            rows = conn.execute(query.order_by(runs.c.time, runs.c.run_id)).all()
        return [RunInfo(r.run_id, r.time, r.commit, r.branch, r.source) for r in rows]

    def series(
        self,
        case: str = "*",
        metric: str | None = None,
        since: str | None = None,
        suite: str | None = None,
        baseline_key: str | None = None,
    ) -> list[Series]:
        """One :class:`Series` per (suite, case, metric, baseline key) whose case id matches the glob ``case``,
        points oldest first; ``since`` (ISO 8601 UTC, see :func:`parse_since`) keeps the runs that started then
        or later. Sorted by suite, case, metric and baseline key."""
        import sqlalchemy as sa

        from harness.history.schema import cases, metric_values, runs

        mv = metric_values
        query = (
            sa.select(
                mv.c.suite,
                mv.c.case_id,
                mv.c.metric,
                runs.c.baseline_key,
                runs.c.run_id,
                runs.c.time,
                runs.c.commit,
                runs.c.branch,
                mv.c.value,
                mv.c.trials,
                cases.c.verdict,
            )
            .select_from(
                mv.join(runs, runs.c.run_id == mv.c.run_id).join(
                    cases,
                    sa.and_(
                        cases.c.run_id == mv.c.run_id, cases.c.suite == mv.c.suite, cases.c.case_id == mv.c.case_id
                    ),
                )
            )
            .order_by(runs.c.time, runs.c.run_id)
        )
        query = _matching(
            query, mv.c.case_id, case, (mv.c.metric, metric), (mv.c.suite, suite), (runs.c.baseline_key, baseline_key)
        )
        if since is not None:
            query = query.where(runs.c.time >= since)
        with self._errors("cannot be read"), self.engine.connect() as conn:
            rows = conn.execute(query).all()
        grouped: dict[tuple[str, str, str, str], list[Point]] = {}
        for r in rows:
            if not fnmatch.fnmatchcase(r.case_id, case):  # LIKE is a prefilter: SQLite's ignores case
                continue
            point = Point(r.run_id, r.time, r.commit, r.branch, r.value, tuple(r.trials or ()), r.verdict)
            grouped.setdefault((r.suite, r.case_id, r.metric, r.baseline_key), []).append(point)
        return [Series(*key, points=tuple(points)) for key, points in sorted(grouped.items())]

    def change_points(
        self,
        case: str = "*",
        metric: str | None = None,
        suite: str | None = None,
        baseline_key: str | None = None,
    ) -> list[StoredChange]:
        """The stored change points of the series whose case id matches the glob ``case``, by suite, case, metric,
        baseline key and time (none in a read-only store of a schema before they were stored)."""
        import sqlalchemy as sa

        from harness.history.schema import change_points as table

        if self.stored_version < 3:
            return []
        query = sa.select(*(table.c[name] for name in StoredChange.__dataclass_fields__))
        wanted = ((table.c.metric, metric), (table.c.suite, suite), (table.c.baseline_key, baseline_key))
        query = _matching(query, table.c.case_id, case, *wanted)
        order = (table.c.suite, table.c.case_id, table.c.metric, table.c.baseline_key, table.c.time, table.c.run_id)
        with self._errors("cannot be read"), self.engine.connect() as conn:
            rows = conn.execute(query.order_by(*order)).all()
        return [StoredChange(*row) for row in rows if fnmatch.fnmatchcase(row.case_id, case)]

    # -- life cycle and errors --------------------------------------------------------------------------------------
    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _errors(self, doing: str) -> contextlib.AbstractContextManager[None]:
        return database_errors(self.display, doing)


@contextlib.contextmanager
def database_errors(display: str, doing: str) -> Iterator[None]:
    """A database's own exception (refused connection, locked or corrupt file, lost server) as one line."""
    import sqlalchemy as sa

    try:
        yield
    except sa.exc.DBAPIError as exc:
        cause = _first_line(exc)
        advice = (
            "check the URL and that the server is running"
            if isinstance(exc, sa.exc.OperationalError)
            else "check that it is a harness history store"
        )
        raise HarnessError(f"history store {display} {doing}: {cause}; {advice}") from None


def _first_line(exc: sa.exc.DBAPIError) -> str:
    text = str(exc.orig).strip() if exc.orig is not None else ""
    return text.splitlines()[0] if text else type(exc).__name__


def _write_refused(exc: sa.exc.DBAPIError) -> bool:
    """Whether the database refused a write because it is read-only to this connection: an SQLite file opened
    read-only (``SQLITE_READONLY`` and its extended codes), a PostgreSQL read-only transaction or a role without
    the privilege."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF == _SQLITE_READONLY
    return getattr(exc.orig, "sqlstate", None) in _PG_REFUSED_WRITES


def _sqlite_connect(dbapi_connection: Any, record: Any) -> None:
    # pysqlite's own transaction handling off, so the "begin" listener below decides how a transaction starts.
    dbapi_connection.isolation_level = None
    dbapi_connection.execute("PRAGMA foreign_keys = ON")


def _sqlite_begin(conn: sa.Connection) -> None:
    # A writer takes the write lock at once: two writers that both began by reading would each wait for the other
    # to drop its read lock, and SQLite fails one of them at once ("database is locked") instead of waiting.
    immediate = conn.get_execution_options().get("history_write")
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _like(glob: str) -> str | None:
    """A LIKE pattern that every id matching ``glob`` matches (None: no useful prefilter, e.g. ``[ab]`` classes)."""
    if "[" in glob:
        return None
    escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


# -- rows ------------------------------------------------------------------------------------------------------------
def _run_row(results: RunResults, run: RunInfo) -> dict[str, Any]:
    env = results.environment
    return {
        "run_id": run.run_id,
        "time": run.time,
        "commit": run.commit,
        "branch": run.branch,
        "baseline_key": str(env.get("key") or "unknown"),
        "suites": sorted({_suite_of(results, c) for c in results.cases} | set(results.suites)),
        "environment": _json(env),
        "source": run.source,
        "harness_version": env.get("harness_version"),
    }


def _case_row(run_id: str, results: RunResults, case: CaseResult) -> dict[str, Any]:
    telemetry = {k: case.telemetry[k] for k in ("status", "flagged", "throttled", "flags") if k in case.telemetry}
    build = {k: v for k, v in case.build.items() if isinstance(v, (int, float, bool, str))}
    return {
        "run_id": run_id,
        "suite": _suite_of(results, case),
        "case_id": case.id,
        "params": _json(case.params),
        "status": case.status,
        "verdict": case.verdict,
        "accuracy": _json(case.accuracy) if case.accuracy is not None else None,
        "telemetry": _json(telemetry),
        "build": _json(build),
    }


def _value_rows(run_id: str, results: RunResults, case: CaseResult) -> Iterator[dict[str, Any]]:
    """One row per finite metric of the case; a NaN has no place in a trend (the case row keeps its verdict)."""
    for metric, value in sorted(case.metrics.items()):
        if not _finite(value):
            continue
        yield {
            "run_id": run_id,
            "suite": _suite_of(results, case),
            "case_id": case.id,
            "metric": metric,
            "value": float(value),
            "trials": [float(t) for t in case.trials.get(metric, []) if _finite(t)],
        }


def _change_row(series: Series, point: ChangePoint) -> dict[str, Any]:
    return {
        "suite": series.suite,
        "case_id": series.case_id,
        "metric": series.metric,
        "baseline_key": series.baseline_key,
        "run_id": point.run_id,
        "time": point.time,
        "commit_before": point.commit_before,
        "commit": point.commit,
        "before": point.before,
        "after": point.after,
        "change": point.change,
        "p_value": point.p_value,
        "worse": point.worse,
    }


def _matching(query: _Query, case_column: Any, case: str, *wanted: tuple[Any, str | None]) -> _Query:
    """``query`` narrowed to case ids like the glob ``case`` (a prefilter: the caller checks the glob itself) and to
    the given values of the other columns (None: any)."""
    like = _like(case)
    if like is not None:
        query = query.where(case_column.like(like, escape="\\"))
    for column, value in wanted:
        if value is not None:
            query = query.where(column == value)
    return query


def _series_match(table: sa.Table, series: Series) -> list[sa.ColumnElement[bool]]:
    """The conditions of ``table``'s rows that belong to ``series``."""
    return [
        table.c.suite == series.suite,
        table.c.case_id == series.case_id,
        table.c.metric == series.metric,
        table.c.baseline_key == series.baseline_key,
    ]


def _suite_of(results: RunResults, case: CaseResult) -> str:
    suite = case.params.get("suite")
    if isinstance(suite, str) and suite:
        return suite
    return next(iter(results.suites)) if len(results.suites) == 1 else ""


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _json(value: Any) -> Any:
    """``value`` as JSON a database takes: non-finite numbers as None, tuples as lists, other objects as text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if value is None or isinstance(value, (str, int)):
        return value
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)
