"""Optional Sentry: with `SENTRY_DSN` set, a 500 reaches the DSN's server as an envelope with
its traceback and the request's id as a tag, and nothing that names a person; unset, the SDK is
not even loaded. Each case runs Kassa in a process of its own (the SDK patches Django for good)
against a real HTTP receiver on loopback standing in for Sentry."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A forced 500 through the whole stack: the health check's database call raises something that
# is not a DatabaseError. The search in the query string, the bearer token and the body are
# what must never leave.
FORCE_500 = """
import io, os, sys
from wsgiref.util import setup_testing_defaults
os.environ["DJANGO_SETTINGS_MODULE"] = "kassa.settings"
from kassa.wsgi import application
import sentry_sdk
import kassa.health

def broken():
    raise RuntimeError("the disk is on fire")

kassa.health.connection.cursor = broken
# Through the WSGI application, as gunicorn calls it.
environ = {"PATH_INFO": "/healthz", "QUERY_STRING": "q=Ann+Guest+ann@example.com",
           "HTTP_X_REQUEST_ID": "req-sentry-1", "HTTP_HOST": "127.0.0.1",
           "HTTP_AUTHORIZATION": "Bearer kassa_secret-token", "REMOTE_ADDR": "203.0.113.9"}
setup_testing_defaults(environ)
statuses = []
b"".join(application(environ, lambda status, headers, *rest: statuses.append(status)))
print(statuses[0].split()[0], sentry_sdk.get_client().is_active(),
      "sentry_sdk.integrations.django" in sys.modules)
sentry_sdk.flush(timeout=10)
"""


class Receiver(ThreadingHTTPServer):
    envelopes: list[list[dict[str, Any]]]


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        assert encoding in ("", "gzip", "deflate"), encoding
        items = [json.loads(line) for line in body.splitlines() if line.strip().startswith(b"{")]
        self.server.envelopes.append(items)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(("127.0.0.1", 0), Handler)
    server.envelopes = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def force_500(tmp_path: Path, **env: str) -> list[str]:
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith("SENTRY_")}
    environment.update(KASSA_VAR_DIR=str(tmp_path),
                       DATABASE_URL=f"sqlite:///{tmp_path / 'k.sqlite3'}", **env)
    done = subprocess.run([sys.executable, "-c", FORCE_500], env=environment, cwd=ROOT,
                          text=True, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_500_reaches_sentry_with_its_request_id_and_no_personal_data(tmp_path, receiver):
    port = receiver.server_address[1]
    assert force_500(tmp_path, SENTRY_DSN=f"http://publickey@127.0.0.1:{port}/7",
                     SENTRY_ENVIRONMENT="staging") == ["500", "True", "True"]
    events = [item for envelope in receiver.envelopes for item in envelope
              if item.get("exception")]
    assert events, receiver.envelopes
    event = events[0]
    [error] = event["exception"]["values"]
    assert error["type"] == "RuntimeError" and error["value"] == "the disk is on fire"
    assert any(frame["function"] == "healthz" for frame in error["stacktrace"]["frames"])
    assert event["tags"]["request_id"] == "req-sentry-1"
    assert event["environment"] == "staging" and event["release"].startswith("kassa@")
    assert event["request"]["url"].endswith("/healthz")
    sent = json.dumps(receiver.envelopes)
    assert event["request"]["method"] == "GET"
    for private in ("Ann", "ann@example.com", "kassa_secret-token", "Bearer", "203.0.113.9"):
        assert private not in sent, private
    assert "user" not in event
    assert not any("vars" in frame for frame in error["stacktrace"]["frames"])


def test_without_a_dsn_nothing_is_loaded_or_sent(tmp_path, receiver):
    assert force_500(tmp_path) == ["500", "False", "False"]
    assert receiver.envelopes == []
