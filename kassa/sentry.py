"""Optional error reporting to Sentry: on only when `SENTRY_DSN` is set (settings.py calls
`start` then), nothing at all otherwise — not even the SDK's import.

What leaves the installation is the error and where it happened, not who or what it concerned:
no user, address, cookies or headers that identify (the SDK's `send_default_pii=False`), no
request body, query string or local variables (a body or a search carries a guest's name, an
amount, an e-mail; a frame's locals can hold a token). Each event carries the request's id
(`X-Request-ID`, kassa.logs) as the tag `request_id`, so that an operator finds the same
request in the JSON logs.
"""

from __future__ import annotations

from typing import Any

from kassa.logs import request_id


def _scrub(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """Runs on every event before it is sent: the request id as a tag, and what could name a
    person or an amount removed from the request."""
    current = request_id.get()
    if current:
        event.setdefault("tags", {})["request_id"] = current
    request = event.get("request")
    if isinstance(request, dict):
        for key in ("data", "query_string", "cookies", "env"):
            request.pop(key, None)
        url = request.get("url")
        if isinstance(url, str):
            request["url"] = url.split("?", 1)[0]
    event.pop("user", None)
    return event


def start(*, dsn: str, environment: str, release: str = "") -> None:
    """`release`: by default this installation's version of Kassa (`kassa@0.1.0`)."""
    from importlib.metadata import PackageNotFoundError, version

    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration

    if not release:
        try:
            release = f"kassa@{version('kassa')}"
        except PackageNotFoundError:
            release = "kassa"
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        integrations=[DjangoIntegration()],
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=False,
        traces_sample_rate=0.0,  # errors only: no performance tracing unless asked for
        before_send=_scrub,  # type: ignore[arg-type]
    )
