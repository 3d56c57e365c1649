"""A real HTTP receiver for the tests: `http.server` on a thread on 127.0.0.1, answering each
POST with the next status of its script (200 once the script is spent), keeping every request
it got, and able to hold a request open until told (a receiver slow to answer)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class Receiver:
    port: int
    answers: list[int] = field(default_factory=list)  # the next statuses, then 200
    requests: list[Received] = field(default_factory=list)
    hold: threading.Event | None = None  # set: answer; unset: keep the request waiting
    arrived: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/kassa?from=test"

    def events(self) -> list[dict[str, Any]]:
        return [r.event for r in self.requests]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def verify(secret: str, header: str, body: bytes, *, tolerance: int | None = None,
           now: int | None = None) -> bool:
    """What a receiver does with `Kassa-Signature: t=…,v1=…`."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body,
                        hashlib.sha256).hexdigest()
    if tolerance is not None and now is not None and abs(now - int(parts["t"])) > tolerance:
        return False
    return hmac.compare_digest(expected, parts["v1"])


@contextmanager
def receiver(port: int | None = None, answers: list[int] | None = None,
             hold: threading.Event | None = None,
             tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    state = Receiver(port or free_port(), list(answers or []), hold=hold)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            state.requests.append(Received(self.path, dict(self.headers.items()), body))
            state.arrived.set()
            if state.hold is not None:
                state.hold.wait(60)
            status = state.answers.pop(0) if state.answers else 200
            answer = b'{"ok": true}' if status < 300 else b"receiver trouble"
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except OSError:
                pass  # the client hung up (its deadline passed, or it was killed)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", state.port), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        if state.hold is not None:
            state.hold.set()
        server.shutdown()
        server.server_close()


def make_deliveries_due() -> None:
    """Time passes: every delivery waiting for its next try is due now, and so is its task."""
    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult

    from kassa.webhooks.models import WebhookDelivery

    now = timezone.now()
    WebhookDelivery.objects.filter(status="pending").update(next_attempt_at=now)
    DBTaskResult.objects.filter(status="READY").update(run_after=now)


def add_endpoint(api: Any, url: str, events: list[str]) -> dict[str, Any]:
    r = api.post("/webhook-endpoints", {"url": url, "events": events})
    assert r.status_code == 201, r.content
    return r.json()  # type: ignore[no-any-return]
