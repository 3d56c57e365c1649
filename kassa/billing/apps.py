from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "kassa.billing"
    label = "billing"

    def ready(self) -> None:
        from kassa.billing import checks, tasks  # noqa: F401  (verify checks, named tasks)
