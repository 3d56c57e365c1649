from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "kassa.tenancy"
    label = "tenancy"
