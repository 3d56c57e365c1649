"""The bench's own PostgreSQL database, and nothing else.

The bench drops and rebuilds what it generates, so it refuses any database whose name does not
say it is a bench's (`kassa_bench` by default): a DATABASE_URL left pointing at real data is an
error, not a target. The maintenance database `postgres` is used only to create or drop that one
database, as `createdb` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/kassa_bench"
ROOT = Path(__file__).resolve().parent.parent


class BenchDatabaseError(SystemExit):
    def __init__(self, message: str) -> None:
        super().__init__(f"bench: {message}")


def bench_url() -> str:
    url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        raise BenchDatabaseError(
            f"the bench needs PostgreSQL; DATABASE_URL is {parts.scheme}://…  "
            f"(unset it for the default {DEFAULT_URL})")
    name = parts.path.lstrip("/")
    if "bench" not in name:
        raise BenchDatabaseError(
            f"refusing database {name!r}: the bench rebuilds its database, so its name must "
            f"contain 'bench' (unset DATABASE_URL for the default {DEFAULT_URL})")
    return url


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _maintenance_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))


def ensure_server(url: str) -> None:
    """Start the local cluster when the bench talks to it and it is down."""
    host = urlsplit(url).hostname or ""
    if host in ("127.0.0.1", "localhost", ""):
        script = ROOT / "scripts" / "postgres-up"
        if script.exists() and subprocess.run([str(script)], check=False).returncode != 0:
            raise BenchDatabaseError("PostgreSQL is not reachable (scripts/postgres-up failed)")


def ensure_database(url: str, *, drop_first: bool) -> bool:
    """Create the bench database if missing (after dropping it with `drop_first`).
    Returns whether it was created now."""
    import psycopg
    from psycopg import sql

    name = database_name(url)
    with psycopg.connect(_maintenance_url(url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and drop_first:
            print(f"bench: dropping database {name}", file=sys.stderr)
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            exists = None
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    return False


def setup_django(url: str) -> None:
    """Point Django at the bench database (and only it), then set it up."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kassa.settings")
    import django

    django.setup()
    from django.conf import settings

    assert settings.DATABASES["default"]["NAME"] == database_name(url)
