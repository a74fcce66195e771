"""Read models for the list pages, each built with a fixed number of queries.

The dashboard needs "the latest deployment" and "the last success" for every service ×
environment pair. One query reads their ids for all pairs at once: a row per service with,
per environment, correlated `LIMIT 1` subqueries that each walk the (service, environment,
-id) index from its top. A second query loads those deployments, a third their releases
(by primary key). So the page costs the
same with ten deployments or a hundred thousand. (An OR of `id IN (subquery)` per pair,
the earlier form, cannot use an index: PostgreSQL scanned every deployment to test it.)
"""

from dataclasses import dataclass, field

from django.db.models import OuterRef, Q, QuerySet, Subquery

from clusters.models import Environment, Workload
from releases import rules, states
from releases.models import Deployment, Release, Service


def latest_per_pair(services, environments, **filters) -> dict[tuple[int, int], Deployment]:
    return latest_per_pair_each(services, environments, {"": filters})[""]


def latest_per_pair_each(services, environments, kinds: dict[str, dict]) -> dict[str, dict]:
    """For each named filter in `kinds`, the newest matching deployment of every pair: three queries in all."""
    if not services or not environments:
        return {name: {} for name in kinds}
    return _with_latest(Service.objects.filter(pk__in=[s.pk for s in services]).order_by(), environments, kinds)[1]


def _with_latest(services: QuerySet, environments, kinds: dict[str, dict]) -> tuple[list[Service], dict[str, dict]]:
    """The services `services` selects, read with the ids of their newest deployments per pair
    and filter in the same query; then those deployments, then their releases."""
    found: dict[str, dict] = {name: {} for name in kinds}
    columns = {
        f"d_{n}_{e.pk}": Subquery(
            Deployment.objects.filter(service=OuterRef("pk"), environment=e, **filters).order_by("-id").values("pk")[:1]
        )
        for n, filters in enumerate(kinds.values())
        for e in environments
    }
    picked = list(services.annotate(**columns))
    ids = {getattr(service, c) for service in picked for c in columns} - {None}
    by_id = {d.pk: d for d in Deployment.objects.filter(pk__in=ids).for_board().order_by()}
    _attach_releases(by_id.values())
    for service in picked:
        for n, name in enumerate(kinds):
            for e in environments:
                deployment = by_id.get(getattr(service, f"d_{n}_{e.pk}"))
                if deployment is not None:
                    found[name][(service.pk, e.pk)] = deployment
    return picked, found


def _attach_releases(deployments) -> None:
    """Each deployment's release and previous release, read by primary key in one query. (Joined
    into the deployments' query instead, PostgreSQL hashed the whole release table, twice.)"""
    wanted = {d.release_id for d in deployments} | {d.previous_release_id for d in deployments}
    releases = Release.objects.in_bulk(wanted - {None})
    for deployment in deployments:
        deployment.release = releases[deployment.release_id]
        deployment.previous_release = releases.get(deployment.previous_release_id)


@dataclass
class Cell:
    service: Service
    environment: Environment
    latest: Deployment | None = None
    running: Deployment | None = None
    workload: Workload | None = None
    locks: list = field(default_factory=list)  # locks in force on this service here (board.dashboard fills them)

    @property
    def version(self) -> str:
        return self.running.release.version if self.running else ""

    @property
    def rollback_plan(self):
        """What the rollback button would do; None while a deployment is under way (or none ever was)."""
        if self.latest is None or self.latest.is_active:
            return None
        return Deployment.objects.rollback_plan(self.service, self.environment)

    @property
    def drifted(self) -> bool:
        """The cluster runs something else than the portal put there (and no rollout explains it)."""
        return bool(self.workload and self.workload.drifted and not (self.latest and self.latest.is_active))


@dataclass
class Row:
    service: Service
    cells: list[Cell] = field(default_factory=list)


def matrix(services, environments) -> list[Row]:
    """A row per service (a list, or a QuerySet read in the same query as the pairs), a cell per environment."""
    kinds = {"latest": {}, "running": {"state": states.SUCCEEDED}}
    if isinstance(services, QuerySet) and environments:
        services, pairs = _with_latest(services, environments, kinds)
    else:
        pairs = latest_per_pair_each(services, environments, kinds)
    latest, running = pairs["latest"], pairs["running"]
    workloads = {(w.environment_id, w.name): w for w in Workload.objects.filter(environment__in=environments)}

    def cell(service, env):
        key = (service.pk, env.pk)
        workload = workloads.get((env.pk, service.k8s_deployment))
        return Cell(service, env, latest.get(key), running.get(key), workload)

    return [Row(s, [cell(s, e) for e in environments]) for s in services]


def dashboard(environments, held) -> dict:
    """Services × `environments` (those in use: archived ones keep their history but leave the
    board), with the freezes and locks that stop deployments now (`held`: guards.in_force)."""
    rows = matrix(Service.objects.all(), environments)
    for row in rows:
        for cell in row.cells:
            cell.locks = held[cell.environment.pk].locks_for(cell.service.slug)
    columns = [(env, held[env.pk]) for env in environments]
    return {"rows": rows, "environments": environments, "columns": columns}


def dashboard_row(service, environments) -> list[Cell]:
    return matrix([service], environments)[0].cells


def matrix_for_environment(services, environment) -> list[Cell]:
    """One environment's column: a cell per service."""
    return [row.cells[0] for row in matrix(services, [environment])]


def waiting_for(user):
    """Deployments pending approval that `user` may still decide on: in environments they approve
    for, not decided yet, and not their own request unless the environment allows self-approval."""
    mine = rules.group_ids(user)
    return (
        Deployment.objects.filter(state=states.PENDING_APPROVAL, environment__approver_group_id__in=mine)
        .exclude(approvals__user=user)
        .exclude(Q(requested_by=user) & Q(environment__allow_self_approval=False))
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
