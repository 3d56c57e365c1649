"""One try of one delivery: claimed, signed, POSTed outside every transaction, recorded.

A delivery is claimed (pending → sending, its attempt counted) with a conditional update, so
two workers never send it at once, and it is due again only when a try fails or its claim
expires (a worker killed mid-delivery): the receiver may then see the same event twice, with
the same `id` — which is how it tells a retry from a new event. Anything but a 2xx is a failure
(a redirect is not followed), retried with doubling waits, at most RETRY_FOR after the event.

Each try resolves the URL again and connects to an address that passed the check
(kassa.webhooks.addresses), with a deadline of TIMEOUT_SECONDS for the whole exchange, on the
worker's webhooks lane: a slow receiver holds up only other webhooks, and at most that long.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import logging
import socket
import ssl
import threading
import time

from cryptography.fernet import InvalidToken
from django.db.models import F
from django.utils import timezone

from kassa.core.locks import assert_outside_transaction
from kassa.core.outbox import enqueue
from kassa.webhooks import addresses, secret_box
from kassa.webhooks.models import DeliveryStatus, WebhookDelivery

logger = logging.getLogger("kassa.webhooks")

TIMEOUT_SECONDS = 10.0  # connect, send and the answer's status line and headers, together
CLAIM_SECONDS = 60  # a claim older than this was lost with its worker (a try takes ≤ 10 s)
RETRY_FOR = dt.timedelta(days=3)
FIRST_WAIT_SECONDS = 30
LONGEST_WAIT_SECONDS = 3 * 3600
READ_AT_MOST = 1024  # bytes of the answer kept for the deliveries list's last_error
USER_AGENT = "Kassa-Webhooks/1"


def backoff(attempt: int) -> dt.timedelta:
    """The wait after the `attempt`-th failed try: 30 s, doubling, at most three hours."""
    return dt.timedelta(seconds=min(FIRST_WAIT_SECONDS * 2 ** max(attempt - 1, 0),
                                    LONGEST_WAIT_SECONDS))


def signature(secret: str, t: int, body: bytes) -> str:
    """`Kassa-Signature`'s value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`."""
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class DeliveryFailed(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to one address already checked, with the URL's host in the Host header."""

    def __init__(self, target: addresses.Target, address: str, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to one address already checked; the certificate must be the URL host's."""

    def __init__(self, target: addresses.Target, address: str, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout,
                         context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST `body` to `url`, checked again; (status, the first bytes of the answer). Raises
    DeliveryFailed when no answer came (refused URL, no connection, timeout)."""
    try:
        target = addresses.resolve(url)
    except addresses.AddressRefused as exc:
        raise DeliveryFailed(f"the URL is refused now: {exc.message}") from None
    kind = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    deadline = time.monotonic() + TIMEOUT_SECONDS
    errors = []
    for address in target.addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        connection = kind(target, address, remaining)
        # The socket timeout bounds each read; the watchdog bounds them all together, so a
        # receiver that trickles its answer a byte at a time still ends at the deadline.
        watchdog = threading.Timer(remaining, _cut, args=(connection,))
        watchdog.daemon = True
        watchdog.start()
        try:
            connection.request("POST", target.path, body=body, headers=headers)
            answer = connection.getresponse()
            return answer.status, answer.read(READ_AT_MOST).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{address}: {type(exc).__name__}: {exc}")
        finally:
            watchdog.cancel()
            connection.close()
    raise DeliveryFailed("no answer: " + ("; ".join(errors) or "timed out"))


def _cut(connection: http.client.HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def deliver(delivery_id: int) -> None:
    """One try of a delivery that is due (a copy of the task queued beside a delayed retry, or
    by the sweep, finds it not due and does nothing)."""
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now).update(
        status=DeliveryStatus.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    if not claimed:
        return
    delivery = WebhookDelivery.objects.select_related("endpoint", "event").get(pk=delivery_id)
    assert_outside_transaction("delivering a webhook")
    payload = delivery.event.body.encode()
    try:
        secret = secret_box.decrypt(delivery.endpoint.secret_encrypted)
    except InvalidToken:
        _failed(delivery, now, "the endpoint's secret cannot be decrypted with SECRET_KEY "
                "or SECRET_KEY_FALLBACKS: make the endpoint again", None)
        return
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "Kassa-Signature": signature(secret, int(time.time()), payload),
               "Kassa-Event-Id": delivery.event.uid, "Kassa-Event-Type": delivery.event.type}
    try:
        status, answer = post(delivery.endpoint.url, payload, headers)
    except DeliveryFailed as exc:
        _failed(delivery, now, str(exc), None)
        return
    if not 200 <= status < 300:
        _failed(delivery, now, f"answered {status}: {answer}".strip(), status)
        return
    WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.SENDING).update(
        status=DeliveryStatus.DELIVERED, delivered_at=timezone.now(), last_status_code=status,
        last_error="", next_attempt_at=None)
    logger.info("webhook %s (%s) delivered to endpoint %s on try %s", delivery.event.uid,
                delivery.event.type, delivery.endpoint_id, delivery.attempts)


def _failed(delivery: WebhookDelivery, now: dt.datetime, message: str,
            status: int | None) -> None:
    message = message[:500]
    retry_at = now + backoff(delivery.attempts)
    if retry_at > delivery.event.created_at + RETRY_FOR:
        logger.error("webhook %s to endpoint %s: gave up after %s tries over three days: %s",
                     delivery.event.uid, delivery.endpoint_id, delivery.attempts, message)
        WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.SENDING).update(
            status=DeliveryStatus.GAVE_UP, last_status_code=status, last_error=message,
            next_attempt_at=None)
        return
    logger.warning("webhook %s to endpoint %s: try %s failed (%s); again at %s",
                   delivery.event.uid, delivery.endpoint_id, delivery.attempts, message,
                   retry_at.isoformat())
    if WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.SENDING).update(
            status=DeliveryStatus.PENDING, next_attempt_at=retry_at, last_status_code=status,
            last_error=message):
        enqueue("webhooks.deliver", delivery.pk, run_after=retry_at)
