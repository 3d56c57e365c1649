from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "kassa.reports"
    label = "reports"

    def ready(self) -> None:
        from kassa.reports import checks  # noqa: F401  (registers the verify checks)
