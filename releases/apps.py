from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases"

    def ready(self):
        from auditlog.registry import auditlog

        from clusters.apps import own_fields

        # Importing these connects their signal receivers.
        from releases import (  # noqa: F401 - Grafana annotations, Slack messages, live freezes and locks
            annotations,
            guards,
            notifications,
            receivers,
            reporting,
            slack_approvals,
        )

        # The API's models (tokens, service accounts) and their admin live in releases/api/.
        from releases.api import admin as api_admin  # noqa: F401
        from releases.models import Service

        auditlog.register(Service, include_fields=own_fields(Service))
