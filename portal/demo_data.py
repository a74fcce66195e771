"""Seed data for `manage.py demo`: people, a cluster, dev → staging → prod, three services,
releases whose commits exist in the sandbox GitHub, and some history.

History rows are written directly (they happened "before"), not through the state machine,
so seeding sends no notifications. Idempotent: does nothing when the users already exist.
"""

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from clusters.models import Cluster, Environment
from releases import states
from releases.models import Approval, Check, Deployment, DeploymentEvent, Release, Service, Verification

PASSWORD = "pampam-demo"
GITHUB_OWNER = "pampam"
COMMITS_PER_REPO = 40
# (slug, name, description, replicas in prod)
SERVICES = [
    ("storefront", "Storefront", "The shop people buy from during a group buy.", 4),
    ("groupbuy-api", "Group-buy API", "Creates groups, counts buyers, closes deals.", 3),
    ("order-worker", "Order worker", "Turns closed deals into orders and payments.", 2),
]
PROD_REPLICAS = {slug: replicas for slug, _, _, replicas in SERVICES}
ENVIRONMENTS = [
    # slug, name, approvals, deploy via, replicas factor, auto rollback, production
    ("dev", "Dev", 0, Environment.DIRECT, 1, True, False),
    ("staging", "Staging", 1, Environment.JENKINS, 2, False, False),
    ("prod", "Prod", 2, Environment.DIRECT, None, True, True),
]
VERSIONS = ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0-crash", "1.5.0-errors"]
# The commit (index in the sandbox repository's history) each version was built from.
VERSION_COMMITS = {"1.0.0": 8, "1.1.0": 17, "1.2.0": 26, "1.3.0": 34, "1.4.0-crash": 38, "1.5.0-errors": 39}
# Storefront's rollouts are verified (releases/verdicts.py): its 5xx ratio and p99 latency in
# Prometheus, which scrapes the sandbox cluster's /metrics, and a probe of its load balancer.
STOREFRONT_CHECKS = [
    (
        "5xx ratio",
        'sum(rate(sandbox_http_requests_total{namespace="$namespace",deployment="storefront",code=~"5.."}[$window]))'
        ' / sum(rate(sandbox_http_requests_total{namespace="$namespace",deployment="storefront"}[$window]))',
        "<",
        0.05,
    ),
    (
        "p99 latency (s)",
        "histogram_quantile(0.99, sum by (le) (rate(sandbox_http_request_duration_seconds_bucket"
        '{namespace="$namespace",deployment="storefront"}[$window])))',
        "<",
        0.2,
    ),
]
BAKE_SECONDS = {"dev": 20, "staging": 30, "prod": 60}


@dataclass
class Ports:
    kube: int
    jenkins: int
    github: int
    grafana: int
    slack: int
    prometheus: int = 0


def sha_of(repo: str, index: int) -> str:
    """The sandbox GitHub's deterministic sha of commit `index` of `repo`."""
    return hashlib.sha1(f"{repo}:{index}".encode(), usedforsecurity=False).hexdigest()


def replicas_in(env_slug: str, prod_replicas: int) -> int:
    return {"dev": 1, "staging": 2}.get(env_slug, prod_replicas)


def image_of(slug: str, version: str) -> str:
    return f"registry.pampam.local/{slug}:{version}"


@transaction.atomic
def seed(ports: Ports, token: str) -> bool:
    if User.objects.filter(username="alice").exists():
        return False
    groups = {name: Group.objects.create(name=name) for name in ("developers", "approvers", "release-managers")}
    User.objects.create_superuser("admin", "admin@pampam.local", PASSWORD)
    people = {
        "alice": ["developers", "approvers"],
        "bob": ["developers", "approvers", "release-managers"],
        "carol": ["approvers", "release-managers"],
    }
    users = {}
    for name, member_of in people.items():
        users[name] = User.objects.create_user(name, f"{name}@pampam.local", PASSWORD, first_name=name.title())
        users[name].groups.set([groups[g] for g in member_of])
    cluster = Cluster(name="sandbox", api_url=f"http://127.0.0.1:{ports.kube}")
    cluster.token = token
    cluster.save()
    environments = _environments(cluster, groups)
    services = _services()
    _verification(ports, services, environments)
    _history(services, environments, users)
    return True


def _verification(ports: Ports, services, environments) -> None:
    for slug, environment in environments.items():
        Verification.objects.create(environment=environment, bake_seconds=BAKE_SECONDS[slug])
    storefront = next(s for s in services if s.slug == "storefront")
    storefront.probe_url = f"http://127.0.0.1:{ports.kube}/sandbox/traffic/{{namespace}}/storefront/"
    # Lenient, so that a `-errors` release is stopped by its 5xx check (charted) rather than the probe.
    storefront.probe_max_failed_percent = 40.0
    storefront.save()
    for name, query, comparison, threshold in STOREFRONT_CHECKS:
        Check.objects.create(
            service=storefront, name=name, query=query, comparison=comparison, threshold=threshold, window="20s"
        )


def _environments(cluster, groups) -> dict[str, Environment]:
    result = {}
    for position, (slug, name, approvals, via, _, auto_rollback, production) in enumerate(ENVIRONMENTS, 1):
        result[slug] = Environment.objects.create(
            slug=slug,
            name=name,
            position=position,
            cluster=cluster,
            namespace=f"pampam-{slug}",
            required_approvals=approvals,
            approver_group=groups["approvers"],
            deployer_group=groups["release-managers" if production else "developers"],
            requires_previous=slug != "dev",
            deploy_via=via,
            jenkins_deploy_job=f"deploy/{slug}" if via == Environment.JENKINS else "",
            progress_deadline_seconds=120,
            auto_rollback=auto_rollback,
            is_production=production,
            grafana_variables={"namespace": f"pampam-{slug}", "cluster": "sandbox"},
        )
    return result


def _services() -> list[Service]:
    return [
        Service.objects.create(
            slug=slug,
            name=name,
            description=description,
            github_repo=f"{GITHUB_OWNER}/{slug}",
            jenkins_build_job=f"{slug}/build",
            image_repository=f"registry.pampam.local/{slug}",
            k8s_deployment=slug,
            k8s_container=slug,
            grafana_dashboard_uid="pampam-service",
            grafana_panel_ids=[1, 2, 3, 4],
        )
        for slug, name, description, _ in SERVICES
    ]


def _history(services, environments, users) -> None:
    """Each service: 1.0.0 and 1.1.0 everywhere, 1.2.0 in dev and staging, 1.3.0, 1.4.0-crash and
    1.5.0-errors built (the sandbox cluster's pods crash-loop on a `-crash` image: deploy it to Dev,
    which rolls back by itself, to watch a failed rollout go back to the last good release; a
    `-errors` storefront answers one request in three with 500 and fails its 5xx check).

    Storefront 1.2.0 waits for approval in prod (bob asked; alice and carol can approve).
    Group-buy API 1.2.0 once failed in prod and was rolled back automatically to 1.1.0.
    """
    start = timezone.now() - timedelta(days=20)
    clock = iter(start + timedelta(hours=7 * i) for i in range(1000))
    for service in services:
        repo = service.github_repo
        releases = {}
        for version in VERSIONS:
            releases[version] = Release.objects.create(
                service=service,
                version=version,
                git_sha=sha_of(repo, VERSION_COMMITS[version]),
                image=image_of(service.slug, version),
                source="jenkins",
                test_summary={"total": 240, "passed": 238, "skipped": 2, "failed": 0},
                created_at=next(clock),
            )
        previous = {}
        plan = [
            ("1.0.0", "dev"),
            ("1.0.0", "staging"),
            ("1.0.0", "prod"),
            ("1.1.0", "dev"),
            ("1.1.0", "staging"),
            ("1.1.0", "prod"),
            ("1.2.0", "dev"),
            ("1.2.0", "staging"),
        ]
        if service.slug == "groupbuy-api":
            plan.append(("1.2.0", "prod!"))
        for version, env_slug in plan:
            failed = env_slug.endswith("!")
            env = environments[env_slug.rstrip("!")]
            past = _past(service, releases[version], env, previous.get(env.slug), users, next(clock), failed)
            if failed:
                _rolled_back(past, previous[env.slug])
            else:
                previous[env.slug] = releases[version]
        if service.slug == "storefront":
            _pending(releases["1.2.0"], environments["prod"], previous["prod"], users["bob"])


def _past(service, release, env, previous, users, at, failed) -> Deployment:
    approvers = [users["alice"], users["carol"]][: env.required_approvals]
    final = states.FAILED if failed else states.SUCCEEDED
    desired = replicas_in(env.slug, PROD_REPLICAS[service.slug])
    deployment = Deployment.objects.create(
        service=service,
        environment=env,
        release=release,
        previous_release=previous,
        state=final,
        requested_by=users["bob"],
        required_approvals=env.required_approvals,
        created_at=at,
        started_at=at + timedelta(minutes=10),
        finished_at=at + timedelta(minutes=13),
        reason="Pod crash-looping (CrashLoopBackOff, 3 restarts)." if failed else "",
        progress={
            "desired": desired,
            "updated": desired,
            "ready": desired,
            "available": desired,
            "total": desired,
            "max_total": desired + 1,
            "status": "complete",
        },
        downtime={
            "checked": True,
            "dropped": False,
            # 25% maxUnavailable rounds down: 1–3 replicas keep all, 4 may lose one.
            "min_available": desired - desired // 4,
            "min_required": desired - desired // 4,
            "seconds": 0,
        },
    )
    lines = [("requested", f"bob requested {service.name} {release.version} in {env.name}.", users["bob"])]
    lines += [("approval", f"{u.username} approved.", u) for u in approvers]
    lines += [("state", "Approved.", None), ("state", f"Rolling out {release.image}.", None)]
    if failed:
        lines += [
            ("state", "Pod crash-looping (CrashLoopBackOff, 3 restarts).", None),
            ("rollback", f"Rolling back automatically to {previous.version}.", None),
        ]
    else:
        lines += [("state", f'Rolled out: Deployment "{service.k8s_deployment}" successfully rolled out.', None)]
    for user in approvers:
        Approval.objects.create(deployment=deployment, user=user, decision=Approval.APPROVE, created_at=at)
    for seq, (kind, message, actor) in enumerate(lines, 1):
        DeploymentEvent.objects.create(
            deployment=deployment,
            seq=seq,
            kind=kind,
            message=message,
            actor=actor,
            created_at=at + timedelta(minutes=seq),
        )
    Deployment.objects.filter(pk=deployment.pk).update(last_seq=len(lines))
    return deployment


def _rolled_back(failed: Deployment, target: Release) -> Deployment:
    """The automatic rollback that followed `failed`: a deployment of its own, back to `target`."""
    rollback = Deployment.objects.create_rollback(
        failed,
        target,
        automatic=True,
        state=states.SUCCEEDED,
        created_at=failed.finished_at,
        started_at=failed.finished_at,
        finished_at=failed.finished_at + timedelta(minutes=2),
        progress=failed.progress,
        downtime=failed.downtime,
        min_available=failed.min_available,
    )
    lines = [
        ("requested", f"The portal rolled back from {failed.release.version} to {target.version}."),
        ("state", "Approved by the portal: automatic rollbacks restore the last good release."),
        ("state", f"Rolling back to {target.image}."),
        ("state", "Rolled back."),
    ]
    for seq, (kind, message) in enumerate(lines, 1):
        DeploymentEvent.objects.create(
            deployment=rollback,
            seq=seq,
            kind=kind,
            message=message,
            created_at=failed.finished_at + timedelta(seconds=seq),
        )
    Deployment.objects.filter(pk=rollback.pk).update(last_seq=len(lines))
    return rollback


def _pending(release, env, previous, requester) -> None:
    deployment = Deployment.objects.create(
        service=release.service,
        environment=env,
        release=release,
        previous_release=previous,
        requested_by=requester,
        required_approvals=env.required_approvals,
    )
    deployment.log(
        "requested",
        f"{requester.username} requested {release.service.name} {release.version} in {env.name}.",
        actor=requester,
    )


def jenkins_seed() -> dict:
    """The sandbox Jenkins' jobs: the build job of every service and the deploy job of every
    environment that deploys through Jenkins (a job that is not seeded does not exist)."""
    jobs = {service.jenkins_build_job: {} for service in Service.objects.exclude(jenkins_build_job="")}
    for env in Environment.objects.exclude(jenkins_deploy_job=""):
        jobs[env.jenkins_deploy_job] = {}
    return {"jobs": jobs}


def cluster_seed() -> dict:
    """What the sandbox cluster runs at start: the last succeeded release per environment."""
    deployments = []
    for env in Environment.objects.all():
        for service in Service.objects.all():
            last = (
                Deployment.objects.filter(service=service, environment=env, state=states.SUCCEEDED)
                .select_related("release")
                .order_by("-id")
                .first()
            )
            prod_replicas = PROD_REPLICAS.get(service.slug, 2)
            deployments.append(
                {
                    "namespace": env.namespace,
                    "name": service.k8s_deployment,
                    "container": service.k8s_container,
                    "image": last.release.image if last else image_of(service.slug, "0.9.0"),
                    "replicas": replicas_in(env.slug, prod_replicas),
                    "spec": {"progressDeadlineSeconds": env.progress_deadline_seconds, "minReadySeconds": 1},
                }
            )
    return {"namespaces": [e.namespace for e in Environment.objects.all()], "deployments": deployments}
