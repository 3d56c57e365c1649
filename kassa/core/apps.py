from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "kassa.core"
    label = "core"
