from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases"

    def ready(self):
        from auditlog.registry import auditlog

        from releases import receivers  # noqa: F401 - connects the watcher signal
        from releases.models import Service

        auditlog.register(Service)
