from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "kassa.audit"
    label = "audit"
