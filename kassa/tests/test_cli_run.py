"""`kassa run` as an operator starts it: migrate, demo, gunicorn and a worker, all stopped
together by Ctrl-C. It runs on its own SQLite file, not on the test database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, seconds: float = 180) -> int:
    # Generous: migrating a fresh database and loading the demo took over a minute on a loaded
    # two-core machine; the wait ends as soon as the server answers.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return int(answer.status)
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} never answered")


def test_run_serves_the_demo_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}",
           "KASSA_VAR_DIR": str(tmp_path)}
    env.pop("EMAIL_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "kassa.cli", "run", "--port", str(port)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_for(f"{base}/accounts/login/") == 200
        assert wait_for(f"{base}/static/web/kassa.css") == 200
        assert wait_for(f"{base}/api/v1/openapi.json") == 200
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    _, err = process.communicate()
    assert process.returncode == 0, err
    assert "demo loaded; sign in as director@evergreen.example" in err
    # Gunicorn and the worker went with it: nothing answers any more.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
