from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class TenancyConfig(AppConfig):
    name = "kassa.tenancy"
    label = "tenancy"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model

        from kassa.tenancy.models import ApiToken, Membership, Organization
        from kassa.tenancy.selectors import forget_tokens

        # What a token names changed: this process asks the database again at once.
        for model in (ApiToken, Membership, Organization, get_user_model()):
            for signal in (post_save, post_delete):
                signal.connect(forget_tokens, sender=model,
                               dispatch_uid=f"kassa.tenancy.forget_tokens.{model.__name__}")
