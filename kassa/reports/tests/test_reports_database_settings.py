"""KASSA_REPORTS_DATABASE_URL adds the `reports` alias, tuned as the default one, read-only,
and the default's mirror under tests; unset, the reports read the default database. Read from
a fresh process, as settings are read once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
SHOW = """
import json, django
django.setup()
from django.conf import settings
from kassa.reports.selectors import Scope, reports_database
print(json.dumps({"databases": settings.DATABASES, "reports": reports_database(),
                  "scope": Scope(None, None, None, None).database}, default=str))
"""


def settings_with(tmp_path: Path, **env: str) -> dict[str, Any]:
    environ = {k: v for k, v in os.environ.items() if k != "KASSA_REPORTS_DATABASE_URL"}
    environ.update(DJANGO_SETTINGS_MODULE="kassa.settings", KASSA_VAR_DIR=str(tmp_path), **env)
    done = subprocess.run([sys.executable, "-c", SHOW], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_reports_url_adds_a_read_only_alias_that_mirrors_default_under_tests(tmp_path):
    found = settings_with(tmp_path, DATABASE_URL="postgres://kassa@db-primary:5432/kassa",
                          KASSA_REPORTS_DATABASE_URL="postgres://reader@db-replica:5433/kassa")
    default, reports = found["databases"]["default"], found["databases"]["reports"]
    assert (reports["HOST"], reports["PORT"], reports["USER"]) == ("db-replica", 5433, "reader")
    assert default["OPTIONS"]["options"] == "-c lock_timeout=20s"
    assert reports["OPTIONS"]["options"] == (
        "-c lock_timeout=20s -c default_transaction_read_only=on")
    assert reports["CONN_MAX_AGE"] == default["CONN_MAX_AGE"] == 60
    assert reports["TEST"]["MIRROR"] == "default"
    assert found["reports"] == found["scope"] == "reports"


def test_without_a_reports_url_the_reports_read_the_default_database(tmp_path):
    found = settings_with(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'one.sqlite3'}")
    assert list(found["databases"]) == ["default"]
    assert found["reports"] == found["scope"] == "default"
