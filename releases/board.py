"""Read models for the list pages, each built with a fixed number of queries.

The dashboard needs "the latest deployment" and "the last success" for every service ×
environment pair. One query per kind fetches them for all pairs at once (an OR of
per-pair `LIMIT 1` subqueries, each served by the (service, environment, -id) index), so
the page costs the same with ten deployments or a hundred thousand.
"""

from dataclasses import dataclass, field
from functools import reduce
from operator import or_

from django.db.models import Q

from clusters.models import Environment, Workload
from releases import rules, states
from releases.models import Approval, Deployment, Service


def latest_per_pair(services, environments, **filters) -> dict[tuple[int, int], Deployment]:
    pairs = [(s.pk, e.pk) for s in services for e in environments]
    if not pairs:
        return {}
    pick = [
        Q(pk__in=Deployment.objects.filter(service_id=s, environment_id=e, **filters).order_by("-id").values("pk")[:1])
        for s, e in pairs
    ]
    rows = Deployment.objects.filter(reduce(or_, pick)).select_related("release", "previous_release", "requested_by")
    return {(d.service_id, d.environment_id): d for d in rows}


@dataclass
class Cell:
    service: Service
    environment: Environment
    latest: Deployment | None = None
    running: Deployment | None = None
    workload: Workload | None = None

    @property
    def version(self) -> str:
        return self.running.release.version if self.running else ""

    @property
    def rollback_to(self):
        from releases.flows import rollback_target

        return rollback_target(self.latest, self.running)

    @property
    def drifted(self) -> bool:
        """The cluster runs something else than the portal put there (and no rollout explains it)."""
        return bool(self.workload and self.workload.drifted and not (self.latest and self.latest.is_active))


@dataclass
class Row:
    service: Service
    cells: list[Cell] = field(default_factory=list)


def matrix(services, environments) -> list[Row]:
    latest = latest_per_pair(services, environments)
    running = latest_per_pair(services, environments, state=states.SUCCEEDED)
    workloads = {(w.environment_id, w.name): w for w in Workload.objects.filter(environment__in=environments)}

    def cell(service, env):
        key = (service.pk, env.pk)
        workload = workloads.get((env.pk, service.k8s_deployment))
        return Cell(service, env, latest.get(key), running.get(key), workload)

    return [Row(s, [cell(s, e) for e in environments]) for s in services]


def dashboard(user) -> dict:
    environments = list(Environment.objects.all())
    rows = matrix(list(Service.objects.all()), environments)
    return {"rows": rows, "environments": environments, "waiting_for_me": waiting_for(user).count()}


def dashboard_row(service, environments) -> list[Cell]:
    return matrix([service], environments)[0].cells


def waiting_for(user):
    """Deployments pending approval that `user` may still decide on."""
    mine = rules.group_ids(user)
    return (
        Deployment.objects.filter(state=states.PENDING_APPROVAL, environment__approver_group_id__in=mine)
        .exclude(approvals__user=user)
        .for_history()
        .order_by("created_at")
    )


def promotion(service, releases) -> dict[int, set[int]]:
    """For each release, the environments it has succeeded in."""
    reached: dict[int, set[int]] = {r.pk: set() for r in releases}
    done = Deployment.objects.filter(release__in=releases, state=states.SUCCEEDED).values_list(
        "release_id", "environment_id"
    )
    for release_id, environment_id in done:
        reached[release_id].add(environment_id)
    return reached


def approvals_by_deployment(deployments) -> dict[int, int]:
    counts: dict[int, int] = {}
    for deployment_id in Approval.objects.filter(deployment__in=deployments, decision=Approval.APPROVE).values_list(
        "deployment_id", flat=True
    ):
        counts[deployment_id] = counts.get(deployment_id, 0) + 1
    return counts
