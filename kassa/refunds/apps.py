from django.apps import AppConfig


class RefundsConfig(AppConfig):
    name = "kassa.refunds"
    label = "refunds"

    def ready(self) -> None:
        from kassa.gateways.sandbox_cli import AFTER_SETTLE
        from kassa.refunds import checks, tasks  # noqa: F401  (verify checks, outbox sweeps)
        from kassa.refunds.gateway_calls import sync_by_reference

        AFTER_SETTLE.append(sync_by_reference)
