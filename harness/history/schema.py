"""The history store's tables (SQLAlchemy Core) and the ordered migrations that build them.

Three tables hold a run: ``runs`` (one row per results file appended: its id, time, git commit and branch, baseline
key, suites and environment), ``cases`` (one row per case of a run: parameters, status, verdict, accuracy, telemetry
flags and build metrics) and ``metric_values`` (one row per metric of a case: the value the gate compares and its
per-trial values). ``change_points`` holds what ``harness history detect`` last found in each series (one row per
change point: the run it starts at, the commit range, the levels either side, the size and p-value), for dashboards
(docs/grafana) to read with SQL. ``schema_version`` holds one row: the number of migrations applied.

Migrations are plain functions applied in order, the missing ones at open, inside the transaction that reads the
version, so a store is never half migrated and two processes opening a new store migrate it once. A store written
by a newer harness is refused rather than guessed at. Alembic would do the same with an environment, a script folder
and a version table of its own; for a handful of tables shipped inside a library, an ordered list of functions is
smaller to read and has nothing to configure.

Times are ISO 8601 text in UTC (``2026-01-01T00:00:00+00:00``): they sort as text and read the same from SQLite
and PostgreSQL. JSON columns hold finite numbers only (non-finite ones become ``null``; PostgreSQL's ``json``
refuses NaN).
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(200), primary_key=True),
    sa.Column("time", sa.String(40), nullable=False, index=True),  # when the run started, ISO 8601 UTC
    sa.Column("commit", sa.String(64)),
    sa.Column("branch", sa.String(255)),
    sa.Column("baseline_key", sa.String(255), nullable=False),  # hardware + backend + version: one series each
    sa.Column("suites", sa.JSON, nullable=False),  # suite names
    sa.Column("environment", sa.JSON, nullable=False),  # the results file's environment fingerprint
    sa.Column("source", sa.String(40), nullable=False),  # pytest, merge or import
    sa.Column("harness_version", sa.String(40)),  # schema 2: the harness that measured the run
)

cases = sa.Table(
    "cases",
    metadata,
    sa.Column("run_id", sa.String(200), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("suite", sa.String(255), primary_key=True),
    sa.Column("case_id", sa.String(500), primary_key=True),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("verdict", sa.String(40)),
    sa.Column("accuracy", sa.JSON),
    sa.Column("telemetry", sa.JSON),  # status, flagged, throttled, flags
    sa.Column("build", sa.JSON),  # build_time_ms, engine_bytes, cache_hit
)

metric_values = sa.Table(
    "metric_values",
    metadata,
    sa.Column("run_id", sa.String(200), primary_key=True),
    sa.Column("suite", sa.String(255), primary_key=True),
    sa.Column("case_id", sa.String(500), primary_key=True),
    sa.Column("metric", sa.String(100), primary_key=True),  # canonical name (harness.core.metrics)
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("trials", sa.JSON, nullable=False),  # per-trial values, [] where not recorded
    sa.ForeignKeyConstraint(
        ["run_id", "suite", "case_id"], ["cases.run_id", "cases.suite", "cases.case_id"], ondelete="CASCADE"
    ),
    sa.Index("ix_metric_values_metric_case", "metric", "case_id"),  # schema 2
)

change_points = sa.Table(  # schema 3
    "change_points",
    metadata,
    # the series: one metric of one case under one baseline key (harness.history.series)
    sa.Column("suite", sa.String(255), primary_key=True),
    sa.Column("case_id", sa.String(500), primary_key=True),
    sa.Column("metric", sa.String(100), primary_key=True),
    sa.Column("baseline_key", sa.String(255), primary_key=True),
    # the first run at the new level, and when it started (ISO 8601 UTC, as runs.time)
    sa.Column("run_id", sa.String(200), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("time", sa.String(40), nullable=False),
    sa.Column("commit_before", sa.String(64)),  # the change is in commit_before..commit
    sa.Column("commit", sa.String(64)),
    sa.Column("before", sa.Float, nullable=False),  # the medians either side, in the metric's unit
    sa.Column("after", sa.Float, nullable=False),
    sa.Column("change", sa.Float, nullable=False),  # after / before - 1
    sa.Column("p_value", sa.Float, nullable=False),
    sa.Column("worse", sa.Boolean, nullable=False),  # moved in the metric's bad direction
)


def _version_1(conn: sa.Connection) -> None:
    """The first tables. Spelled out here rather than derived from the tables above: a migration is a frozen record
    of what one version created, and a later change to the tables must not change what it does."""
    first = sa.MetaData()
    sa.Table("schema_version", first, sa.Column("version", sa.Integer, nullable=False))
    sa.Table(
        "runs",
        first,
        sa.Column("run_id", sa.String(200), primary_key=True),
        sa.Column("time", sa.String(40), nullable=False, index=True),
        sa.Column("commit", sa.String(64)),
        sa.Column("branch", sa.String(255)),
        sa.Column("baseline_key", sa.String(255), nullable=False),
        sa.Column("suites", sa.JSON, nullable=False),
        sa.Column("environment", sa.JSON, nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
    )
    sa.Table(
        "cases",
        first,
        sa.Column("run_id", sa.String(200), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("suite", sa.String(255), primary_key=True),
        sa.Column("case_id", sa.String(500), primary_key=True),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("verdict", sa.String(40)),
        sa.Column("accuracy", sa.JSON),
        sa.Column("telemetry", sa.JSON),
        sa.Column("build", sa.JSON),
    )
    sa.Table(
        "metric_values",
        first,
        sa.Column("run_id", sa.String(200), primary_key=True),
        sa.Column("suite", sa.String(255), primary_key=True),
        sa.Column("case_id", sa.String(500), primary_key=True),
        sa.Column("metric", sa.String(100), primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("trials", sa.JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id", "suite", "case_id"], ["cases.run_id", "cases.suite", "cases.case_id"], ondelete="CASCADE"
        ),
    )
    first.create_all(conn)


def _version_2(conn: sa.Connection) -> None:
    """Record which harness measured a run, and index the series query (metric first: one metric of many cases)."""
    conn.execute(sa.text("ALTER TABLE runs ADD COLUMN harness_version VARCHAR(40)"))
    conn.execute(sa.text("CREATE INDEX ix_metric_values_metric_case ON metric_values (metric, case_id)"))


def _version_3(conn: sa.Connection) -> None:
    """The change points ``harness history detect`` found, where SQL (a Grafana annotation) can read them."""
    third = sa.MetaData()
    sa.Table("runs", third, sa.Column("run_id", sa.String(200), primary_key=True))  # the foreign key's target only
    sa.Table(
        "change_points",
        third,
        sa.Column("suite", sa.String(255), primary_key=True),
        sa.Column("case_id", sa.String(500), primary_key=True),
        sa.Column("metric", sa.String(100), primary_key=True),
        sa.Column("baseline_key", sa.String(255), primary_key=True),
        sa.Column("run_id", sa.String(200), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("time", sa.String(40), nullable=False),
        sa.Column("commit_before", sa.String(64)),
        sa.Column("commit", sa.String(64)),
        sa.Column("before", sa.Float, nullable=False),
        sa.Column("after", sa.Float, nullable=False),
        sa.Column("change", sa.Float, nullable=False),
        sa.Column("p_value", sa.Float, nullable=False),
        sa.Column("worse", sa.Boolean, nullable=False),
    ).create(conn)


# Applied in order; the store's schema version is how many of them it has had. Append, never edit or reorder.
MIGRATIONS: tuple[Callable[[sa.Connection], None], ...] = (_version_1, _version_2, _version_3)
SCHEMA_VERSION = len(MIGRATIONS)
