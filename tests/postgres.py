"""A real PostgreSQL server for the history store's tests, started in a temporary folder with Debian's binaries.

``initdb`` and ``pg_ctl`` come from PATH or /usr/lib/postgresql/*/bin (Debian's ``postgresql`` package, which
``.ci/run`` installs). PostgreSQL refuses to run as root, and CI runs as root: the server then runs as the
``postgres`` user the package creates (through ``runuser``), in a folder that user owns. The server listens on a free
port of 127.0.0.1 with trust authentication and dies with the test session. Where no binary is found or the server
cannot start, the tests that use it are skipped with the reason.

Use: ``from tests.postgres import postgres_server, postgres_url`` in a test module (both are fixtures);
``postgres_url`` is a new, empty database per test.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT_S = 60


def _binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: Debian's newest version, else the ones on PATH."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True):
        if Path(folder, "initdb").is_file() and Path(folder, "pg_ctl").is_file():
            return Path(folder)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    """``command`` as the user the server may run as: this one, or ``postgres`` when this one is root."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a running server's ``postgres`` database (``postgresql://postgres@127.0.0.1:PORT/postgres``)."""
    binaries = _binaries()
    if binaries is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl); install Debian's postgresql package")
    root = Path(tempfile.mkdtemp(prefix="harness-pg-"))
    if os.geteuid() == 0:
        try:
            shutil.chown(root, user="postgres")
        except (LookupError, OSError) as exc:
            shutil.rmtree(root, ignore_errors=True)
            pytest.skip(f"running as root and no 'postgres' user to run the server as ({exc})")
    data, port = root / "data", _free_port()
    pg_ctl = [str(binaries / "pg_ctl"), "-D", str(data)]
    steps = [
        [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        [
            *pg_ctl,
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "-l",
            str(root / "server.log"),
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ],
    ]
    for step in steps:
        done = subprocess.run(_as_server_user(step), capture_output=True, text=True, timeout=START_TIMEOUT_S + 30)
        if done.returncode != 0:
            log = root / "server.log"
            detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.is_file() else []
            shutil.rmtree(root, ignore_errors=True)
            pytest.skip(f"PostgreSQL could not start ({Path(step[0]).name}: {(tail or detail)[0]})")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_server_user([*pg_ctl, "-m", "immediate", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A new, empty database on the session's server, dropped after the test."""
    import sqlalchemy as sa

    name = f"history_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(
        postgres_server.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
