from django.apps import AppConfig


class ClustersConfig(AppConfig):
    name = "clusters"

    def ready(self):
        from auditlog.registry import auditlog

        from clusters.models import Cluster, Environment, FreezeWindow, Lock

        # Own columns only: reverse relations ("deployments") and the id are noise in the trail.
        auditlog.register(Cluster, include_fields=own_fields(Cluster, "token_encrypted"))
        auditlog.register(Environment, include_fields=own_fields(Environment, "slack_webhook_encrypted"))
        auditlog.register(FreezeWindow, include_fields=own_fields(FreezeWindow))
        auditlog.register(Lock, include_fields=own_fields(Lock))


def own_fields(model, *left_out: str) -> list[str]:
    return [f.name for f in model._meta.concrete_fields if f.name != "id" and f.name not in left_out]
