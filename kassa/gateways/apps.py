from django.apps import AppConfig


class GatewaysConfig(AppConfig):
    name = "kassa.gateways"
    label = "gateways"
