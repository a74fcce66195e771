from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases"

    def ready(self):
        from auditlog.registry import auditlog

        # Importing these connects their signal receivers.
        from releases import (  # noqa: F401 - Grafana annotations, Slack messages
            annotations,
            notifications,
            receivers,  # noqa: F401 - watcher observations advance deployments
            reporting,  # noqa: F401 - GitHub Deployments and their statuses
        )
        from releases.models import Service

        auditlog.register(Service)
