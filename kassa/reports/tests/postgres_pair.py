"""A private PostgreSQL primary and its streaming replica on loopback, for one test module.

`initdb` a primary (wal_level=replica, replication trusted from 127.0.0.1), `pg_basebackup -R`
a hot standby from it, start both with `pg_ctl`, and wait until the standby answers and is in
recovery. Run as the `postgres` OS user when the tests run as root (initdb refuses root). The
standby logs every statement (log_statement=all) to a file, so a test can read what it ran;
the primary too, for what it must not have run. Seconds to start; removed when the test ends.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockets}'
wal_level = replica
max_wal_senders = 4
hot_standby = on
fsync = off
synchronous_commit = on
full_page_writes = off
log_statement = 'all'
log_line_prefix = '%m [%p] %d '
"""
HBA = """
local all all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
"""


def bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    assert found, "PostgreSQL's server binaries are not under /usr/lib/postgresql/*/bin"
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    data: Path
    port: int
    log: Path

    def url(self, database: str = "kassa") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "kassa") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def query(self, sql: str, database: str = "kassa") -> object:
        with psycopg.connect(self.dsn(database), autocommit=True, connect_timeout=5) as c:
            cursor = c.execute(sql)
            row = cursor.fetchone() if cursor.description else None
        return row[0] if row else None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def load(self, source: dict[str, Any], database: str = "kassa") -> None:
        """Copy a migrated database's schema and its record of migrations (Django's
        settings_dict of it) into this server: what `migrate` would make, in a fraction of
        its time (Django renders 75 migrations' states in several seconds of CPU)."""
        where = ["-h", source["HOST"] or "127.0.0.1", "-p", str(source["PORT"] or 5432),
                 "-U", source["USER"] or "postgres"]
        env = {**os.environ, "PGPASSWORD": source["PASSWORD"] or ""}
        dumps = [[str(bin_dir() / "pg_dump"), *where, "--schema-only", "--no-owner",
                  "--no-privileges", source["NAME"]],
                 [str(bin_dir() / "pg_dump"), *where, "--data-only", "--table=django_migrations",
                  source["NAME"]]]
        for dump in dumps:
            sql = subprocess.run(dump, capture_output=True, text=True, env=env, timeout=60,
                                 check=True).stdout
            done = subprocess.run(
                [str(bin_dir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                 self.dsn(database)], input=sql, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr[-2000:]


@dataclass
class Pair:
    primary: Server
    replica: Server
    started_seconds: float

    def wait_for_replay(self, timeout: float = 30) -> float:
        """Wait until the replica has replayed everything the primary wrote so far; the
        seconds that took (the replica's lag behind this moment)."""
        began = time.monotonic()
        target = self.primary.query("SELECT pg_current_wal_lsn()::text")
        deadline = began + timeout
        while time.monotonic() < deadline:
            if self.replica.query(
                    f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn", "postgres"):
                return time.monotonic() - began
            time.sleep(0.005)
        raise AssertionError(f"the replica never replayed up to {target}")


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def _run(command: list[str]) -> None:
    done = subprocess.run(_as_postgres(command), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{command[0]} failed: {done.stdout}{done.stderr}"


def _wait_until_ready(server: Server, *, recovering: bool, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if server.query("SELECT pg_is_in_recovery()", "postgres") is recovering:
                return
        except psycopg.OperationalError as error:  # still starting
            last = error
        time.sleep(0.05)
    raise AssertionError(f"PostgreSQL on port {server.port} never got ready: {last}\n"
                         f"{server.log_text()[-2000:]}")


@contextmanager
def primary_and_replica() -> Iterator[Pair]:
    binaries = bin_dir()
    root = Path(tempfile.mkdtemp(prefix="kassa-replica-"))
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        os.chown(root, postgres.pw_uid, postgres.pw_gid)
    primary = Server(root / "primary", free_port(), root / "primary.log")
    replica = Server(root / "replica", free_port(), root / "replica.log")
    started: list[Server] = []
    began = time.monotonic()
    try:
        _run([str(binaries / "initdb"), "-D", str(primary.data), "-U", "postgres",
              "-A", "trust", "--no-sync", "--no-instructions", "-E", "UTF8"])
        with open(primary.data / "postgresql.conf", "a") as conf:
            conf.write(SETTINGS.format(port=primary.port, sockets=root))
        (primary.data / "pg_hba.conf").write_text(HBA)
        _run([str(binaries / "pg_ctl"), "-D", str(primary.data), "-l", str(primary.log),
              "-w", "start"])
        started.append(primary)
        _wait_until_ready(primary, recovering=False)
        primary.query("CREATE DATABASE kassa", "postgres")

        # -R writes standby.signal and primary_conninfo; the copied postgresql.conf names
        # the primary's port, so the replica's own is appended (the last setting wins).
        _run([str(binaries / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
              "-U", "postgres", "-D", str(replica.data), "-R", "-X", "stream",
              "-c", "fast", "--no-sync"])
        with open(replica.data / "postgresql.conf", "a") as conf:
            conf.write(f"port = {replica.port}\n")
        _run([str(binaries / "pg_ctl"), "-D", str(replica.data), "-l", str(replica.log),
              "-w", "start"])
        started.append(replica)
        _wait_until_ready(replica, recovering=True)
        yield Pair(primary, replica, time.monotonic() - began)
    finally:
        for server in reversed(started):
            subprocess.run(_as_postgres([str(binaries / "pg_ctl"), "-D", str(server.data),
                                         "-m", "immediate", "-w", "stop"]),
                           capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
