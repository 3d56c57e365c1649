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


def wait_for(url: str, seconds: float = 300) -> int:
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


def raw_request(port: int, request: bytes) -> bytes:
    """What the server answers to bytes as sent, read until it closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(request)
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except TimeoutError:
            pass
    return answer


def test_the_documented_server_limits_are_the_ones_kassa_run_sets() -> None:
    from kassa.api import SERVER_LIMITS, api
    from kassa.cli import HEADER_FIELD_LIMIT, HEADER_FIELDS_LIMIT, REQUEST_LINE_LIMIT

    for limit in (REQUEST_LINE_LIMIT, HEADER_FIELD_LIMIT, HEADER_FIELDS_LIMIT):
        assert f" {limit} " in SERVER_LIMITS
    assert SERVER_LIMITS in api.description


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
        # The web server's own refusals (documented, see kassa.api.SERVER_LIMITS), and it
        # goes on serving after each.
        long_line = raw_request(port, b"GET /api/v1/centers?q=" + b"a" * 5000 +
                                b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert long_line.startswith(b"HTTP/1.1 414 "), long_line[:200]
        long_header = raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  b"X-Big: " + b"b" * 10_000 + b"\r\n\r\n")
        assert long_header.startswith(b"HTTP/1.1 431 "), long_header[:200]
        assert wait_for(f"{base}/healthz", seconds=10) == 200
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
