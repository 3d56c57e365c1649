from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "kassa.webhooks"
    label = "webhooks"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from kassa.webhooks import (
            events,
            tasks,  # noqa: F401  (the delivery task and its sweep)
        )
        from kassa.webhooks.models import WebhookEndpoint

        # Every change of an endpoint, by the services, the admin or the ORM, in its transaction.
        post_save.connect(events.endpoints_changed, sender=WebhookEndpoint,
                          dispatch_uid="webhooks.endpoints_changed.save")
        post_delete.connect(events.endpoints_changed, sender=WebhookEndpoint,
                            dispatch_uid="webhooks.endpoints_changed.delete")
