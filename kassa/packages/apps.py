from django.apps import AppConfig


class PackagesConfig(AppConfig):
    name = "kassa.packages"
    label = "packages"

    def ready(self) -> None:
        from kassa.packages import checks  # noqa: F401  (registers the verify checks)
