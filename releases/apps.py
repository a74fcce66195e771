from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases"

    def ready(self):
        from auditlog.registry import auditlog

        # Importing these connects their signal receivers.
        from releases import (  # noqa: F401 - Grafana annotations, Slack messages
            annotations,
            notifications,
            receivers,
            reporting,
        )
        from releases.models import Service

        auditlog.register(Service)
