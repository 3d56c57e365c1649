"""Which gateway serves online payments: `KASSA_GATEWAY` (sandbox by default)."""

from __future__ import annotations

from django.conf import settings

from kassa.gateways.base import Gateway


def gateway_named(name: str) -> Gateway:
    if name == "sandbox":
        from kassa.gateways.sandbox import SandboxGateway

        return SandboxGateway()
    if name == "stripe":
        from kassa.gateways.stripe import StripeGateway

        return StripeGateway()
    raise ValueError(f"unknown gateway {name!r}")


def current_gateway() -> Gateway:
    return gateway_named(settings.KASSA_GATEWAY)
