from django.apps import AppConfig


class ClustersConfig(AppConfig):
    name = "clusters"

    def ready(self):
        from auditlog.registry import auditlog

        from clusters.models import Cluster, Environment, FreezeWindow, Lock

        auditlog.register(Cluster, exclude_fields=["token_encrypted"])
        auditlog.register(Environment, exclude_fields=["slack_webhook_encrypted"])
        auditlog.register(FreezeWindow)
        auditlog.register(Lock)
