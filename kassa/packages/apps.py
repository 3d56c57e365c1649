from django.apps import AppConfig


class PackagesConfig(AppConfig):
    name = "kassa.packages"
    label = "packages"

    def ready(self) -> None:
        from kassa.billing.line_kinds import register
        from kassa.billing.models import LineKind
        from kassa.packages import checks  # noqa: F401  (registers the verify checks)
        from kassa.packages.services import PackageLines

        register(LineKind.PACKAGE, PackageLines())
