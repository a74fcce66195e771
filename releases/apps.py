from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases"

    def ready(self):
        from auditlog.registry import auditlog

        # Importing these connects their signal receivers.
        from releases import receivers  # noqa: F401 - watcher observations advance deployments
        from releases.models import Service

        auditlog.register(Service)
