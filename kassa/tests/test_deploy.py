"""Production settings from the environment: `KASSA_SECURE=1` is clean under Django's deploy
check, `kassa run` refuses the development key and the demo's logins there, and `/healthz`
tells a load balancer whether the database answers and when the workers last swept."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import DatabaseError
from django.test import Client
from django.utils import timezone

from kassa.core.models import Lease

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # As an operator's shell has it: none of the test run's own switches.
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("KASSA_SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    environment.update(KASSA_VAR_DIR=str(tmp_path),
                       DATABASE_URL=f"sqlite:///{tmp_path / 'k.sqlite3'}", **env)
    return subprocess.run([sys.executable, *args], env=environment, cwd=ROOT, text=True,
                          capture_output=True, timeout=120, check=False)


def test_the_deploy_check_is_clean_with_kassa_secure_and_a_key_of_its_own(tmp_path):
    done = run("-m", "django", "check", "--deploy", "--fail-level", "WARNING",
               tmp_path=tmp_path, DJANGO_SETTINGS_MODULE="kassa.settings", KASSA_SECURE="1",
               KASSA_SECRET_KEY=secrets.token_urlsafe(50))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout
    # Without KASSA_SECURE the same check names what is missing: the switch is what fixes it.
    plain = run("-m", "django", "check", "--deploy", "--fail-level", "WARNING",
                tmp_path=tmp_path, DJANGO_SETTINGS_MODULE="kassa.settings",
                KASSA_SECRET_KEY=secrets.token_urlsafe(50))
    assert plain.returncode != 0 and "SESSION_COOKIE_SECURE" in plain.stderr


def test_kassa_run_refuses_the_development_key_when_secure(tmp_path):
    done = run("-m", "kassa.cli", "run", "--port", "0", tmp_path=tmp_path, KASSA_SECURE="1")
    assert done.returncode == 2
    assert "KASSA_SECURE=1 needs a secret key of its own" in done.stderr
    assert not (tmp_path / "k.sqlite3").exists()  # refused before touching the database


@pytest.mark.django_db
def test_healthz_says_the_database_answers_and_when_the_workers_swept():
    r = Client().get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok",
                        "worker": {"last_sweep": None, "seconds_since": None}}
    Lease.objects.create(name="sweep", due_at=timezone.now() + dt.timedelta(seconds=5))
    body = Client().get("/healthz").json()
    assert body["worker"]["seconds_since"] in (9, 10, 11)
    assert set(body) == {"status", "database", "worker"}  # nothing of the settings


@pytest.mark.django_db
def test_healthz_is_503_when_the_database_does_not_answer(monkeypatch):
    def broken(*args, **kwargs):
        raise DatabaseError("connection refused")

    monkeypatch.setattr("kassa.health.connection.cursor", broken)
    r = Client().get("/healthz")
    assert r.status_code == 503 and r.json() == {"status": "unavailable",
                                                 "database": "unreachable"}
