from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "kassa.webhooks"
    label = "webhooks"

    def ready(self) -> None:
        from kassa.webhooks import tasks  # noqa: F401  (the delivery task and its sweep)
