from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "kassa.web"
    label = "web"
