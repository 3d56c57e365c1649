from django.apps import AppConfig


class RefundsConfig(AppConfig):
    name = "kassa.refunds"
    label = "refunds"

    def ready(self) -> None:
        from kassa.refunds import (  # noqa: F401  (verify checks, tasks and sweeps)
            checks,
            dispute_checks,
            request_checks,
            tasks,
        )
