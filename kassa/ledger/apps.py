from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_save


class LedgerConfig(AppConfig):
    name = "kassa.ledger"
    label = "ledger"

    def ready(self) -> None:
        from kassa.tenancy.models import Center

        post_save.connect(_open_chart_of_accounts, sender=Center,
                          dispatch_uid="kassa.ledger.open_accounts")


def _open_chart_of_accounts(sender: Any, instance: Any, created: bool, raw: bool = False,
                            **kwargs: Any) -> None:
    """A new center gets its accounts in the transaction that creates it."""
    if created and not raw:
        from kassa.ledger.services import open_accounts

        open_accounts(instance)
