"""List pages at scale: time and SQL queries per page with 100k deployments and 2M events.

Creates (drops first) the PostgreSQL database `pampam_bench_scale` on the server named by
DATABASE_URL (only its host, port and user are used), migrates it and seeds a realistic
history in bulk: 3 environments, 30 services, 200 users, ~20k releases (each with its
commit and Jenkins build), 100,000 deployments over two years in every state, their
approvals, and 20 timeline events each (~2M rows; one deployment has 5,000). Releases,
deployments and approvals are generated here and streamed with COPY; events derive from
the deployments, so PostgreSQL generates them itself (INSERT … SELECT generate_series)
instead of receiving 2M rows over the socket. Then ANALYZE.

Each page is fetched with the Django test client, logged in as an approver: one view rendered
anew (whose queries are captured and counted), then 15 timed runs, each right after a request to
the floor: a view rendering base.html (the header every page has) behind the same middleware,
context processors and client. It prints `ratio <page name>: <x>×` per page: the page's best
run over the floor's best run in the same run (medians are printed too; on a shared machine they
carry the neighbours' load). Pages keep their costly parts rendered until a change they show
(plumbing.fragments), so the timed runs are served from those; `cold <page name>: <x>×` is the
same ratio for views with every kept fragment dropped first (the first view after a change).
Every captured query is EXPLAINed to spot sequential scans over the
big tables; the slowest queries are EXPLAIN ANALYZEd and their plans summarised.

    REDIS_URL=redis://127.0.0.1:6379/8 .venv/bin/python bench/history_scale.py [--quick] [--reuse] [--deployments N]

--quick seeds a tenth of the rows (for `make bench`); --deployments N seeds N deployments (20
events each; 1,000,000 to try a million); --reuse keeps an already seeded database (runs
migrate only), to compare figures before and after a code change. BENCH_SCALE_DATABASE names
another database than pampam_bench_scale (to run two at once).
"""

import argparse
import bisect
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = os.environ.get("BENCH_SCALE_DATABASE", "pampam_bench_scale")
BIG_TABLES = {"releases_deployment", "releases_deploymentevent", "releases_approval", "releases_release"}
METRICS_TOKEN = "bench-metrics-token-0123456789abcdef"


def bench_url() -> str:
    """DATABASE_URL's server with our own database name: never the database DATABASE_URL names."""
    url = urlsplit(os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/pampam")
    return url._replace(path=f"/{DB_NAME}").geturl()


def configure_environment() -> None:
    os.environ["DATABASE_URL"] = bench_url()
    os.environ.setdefault("SECRET_KEY", "bench")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ["METRICS_TOKEN"] = METRICS_TOKEN
    os.environ["DEBUG"] = "0"


def recreate_database() -> None:
    import psycopg

    admin = urlsplit(bench_url())._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def database_exists() -> bool:
    import psycopg

    admin = urlsplit(bench_url())._replace(path="/postgres").geturl()
    with psycopg.connect(admin) as conn:
        return bool(conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone())


def copy_rows(cur, model, columns: str, rows) -> None:
    """COPY `rows` (values for `columns`) into `model`'s table. Required columns the seeder does not
    name get the model field's default, so a new field with a Python-side default needs no change here."""
    from django.db.models import JSONField

    named = {c.strip() for c in columns.split(",")}
    rest = [f for f in model._meta.concrete_fields if f.column not in named and not f.null and f.has_default()]
    extra = tuple(json.dumps(f.get_default()) if isinstance(f, JSONField) else f.get_default() for f in rest)
    names = ", ".join([columns, *(f.column for f in rest)])
    with cur.copy(f"COPY {model._meta.db_table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row((*row, *extra))


# --- seeding ------------------------------------------------------------------------------------

STATES = [("succeeded", 82), ("failed", 9), ("cancelled", 5), ("rejected", 4)]


class Seeder:
    def __init__(self, deployments: int, events_per: int, big_events: int, seed: int = 7):
        self.rng = random.Random(seed)
        self.n_deployments = deployments
        self.events_per = events_per
        self.big_events = big_events
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.start = self.now - timedelta(days=730)

    def run(self) -> dict:
        import psycopg
        from django.core.management import call_command

        t0 = time.perf_counter()
        self.small_objects()
        with psycopg.connect(bench_url()) as conn:
            with conn.cursor() as cur:
                self.releases(cur)
                self.deployments(cur)
                self.approvals(cur)
                self.events(cur)
                self.fix_sequences(cur)
            conn.commit()
            conn.autocommit = True
            conn.execute("ANALYZE")
        # COPY wrote around the models: count what /metrics serves from the rows, as the migration does.
        call_command("rebuild_tallies", verbosity=0)
        return {"seconds": time.perf_counter() - t0}

    def small_objects(self) -> None:
        from django.contrib.auth.hashers import make_password
        from django.contrib.auth.models import Group, User

        from clusters.models import Cluster, Environment, Workload
        from releases.models import Service

        self.approvers = Group.objects.create(name="approvers")
        self.developers = Group.objects.create(name="developers")
        password = make_password("bench")
        users = [User(username=f"user{i:03}", password=password) for i in range(200)]
        users.append(User(username="approver", password=password))
        User.objects.bulk_create(users)
        self.users = list(User.objects.order_by("id").values_list("id", flat=True))
        self.approver = User.objects.get(username="approver")
        self.approver.groups.add(self.approvers, self.developers)
        self.approver_ids = self.users[:30]
        self.approvers.user_set.add(*self.approver_ids)
        self.developers.user_set.add(*self.users[:150])
        cluster = Cluster.objects.create(name="main", api_url="https://kube.example:6443")
        self.environments = [
            Environment.objects.create(
                slug=slug,
                name=slug.title(),
                position=i,
                cluster=cluster,
                namespace=slug,
                required_approvals=i,
                approver_group=self.approvers if i else None,
                deployer_group=self.developers,
                requires_previous=i > 0,
                is_production=slug == "prod",
            )
            for i, slug in enumerate(["dev", "staging", "prod"])
        ]
        self.services = Service.objects.bulk_create(
            [
                Service(
                    slug=f"svc-{i:02}",
                    name=f"Service {i:02}",
                    github_repo=f"shop/svc-{i:02}",
                    jenkins_build_job=f"svc-{i:02}-build",
                    image_repository=f"registry.example/shop/svc-{i:02}",
                    k8s_deployment=f"svc-{i:02}",
                    k8s_container="app",
                )
                for i in range(30)
            ]
        )
        Workload.objects.bulk_create(
            Workload(environment=e, name=s.k8s_deployment, image=f"{s.image_repository}:x", replicas=3)
            for e in self.environments
            for s in self.services
        )

    def releases(self, cur) -> None:
        """~20k releases over two years (one per deployment-and-a-bit), each with a commit and a build."""
        from releases.models import Build, Commit, Release

        count = self.n_deployments // 5
        self.release_times = {s.pk: [] for s in self.services}
        self.release_ids = {s.pk: [] for s in self.services}
        span = (self.now - self.start).total_seconds()
        times = sorted(self.start + timedelta(seconds=self.rng.random() * span) for _ in range(count))
        cols = "id, service_id, version, git_sha, image, jenkins_build_url, test_summary, source, created_by_id, "
        cols += "created_at"
        commits, builds = [], []
        numbers = {s.pk: 0 for s in self.services}
        release_rows = []
        for rid, at in enumerate(times, start=1):
            service = self.rng.choice(self.services)
            numbers[service.pk] += 1
            n = numbers[service.pk]
            sha = f"{rid:040x}"
            release_rows.append(
                (
                    rid,
                    service.pk,
                    f"1.{n // 100}.{n % 100}",
                    sha,
                    f"{service.image_repository}:1.{n // 100}.{n % 100}",
                    f"https://jenkins.example/job/{service.jenkins_build_job}/{n}/",
                    '{"passed": 120, "failed": 0, "total": 120}',
                    "jenkins",
                    self.rng.choice(self.users),
                    at,
                )
            )
            self.release_times[service.pk].append(at)
            self.release_ids[service.pk].append(rid)
            committed = at - timedelta(minutes=self.rng.randint(10, 2880))
            commits.append((service.pk, sha, f"Change {n}", "dev", "", committed, committed))
            started = at - timedelta(minutes=self.rng.randint(3, 15))
            builds.append(
                (
                    service.jenkins_build_job,
                    n,
                    "succeeded",
                    "SUCCESS",
                    "{}",
                    "jenkins",
                    sha,
                    started,
                    at,
                    rid,
                    service.pk,
                )
            )
        copy_rows(cur, Release, cols, release_rows)
        cols = "service_id, sha, message, author, url, committed_at, pushed_at"
        copy_rows(cur, Commit, cols, commits)
        cols = (
            "job_name, number, state, result, parameters, trigger, git_sha, started_at, finished_at, release_id, "
            "service_id, url, reason, version, test_summary, log_offset, last_seq, created_at"
        )
        copy_rows(cur, Build, cols, ((*row, "", "", "", "{}", 0, 0, row[7]) for row in builds))

    def deployments(self, cur) -> None:
        from releases.models import Deployment

        rng = self.rng
        span = (self.now - self.start).total_seconds() - 3600
        times = sorted(self.start + timedelta(seconds=3600 + rng.random() * span) for _ in range(self.n_deployments))
        states, weights = zip(*STATES, strict=True)
        envs = self.environments
        rows = []
        latest = {}
        for did, at in enumerate(times, start=1):
            service = rng.choice(self.services)
            env = rng.choices(envs, weights=(50, 30, 20))[0]
            releases = self.release_times[service.pk]
            index = max(bisect.bisect_right(releases, at) - 1, 0)
            release = self.release_ids[service.pk][index]
            previous = self.release_ids[service.pk][index - 1] if index else None
            state = rng.choices(states, weights=weights)[0]
            if env.required_approvals == 0 and state == "rejected":
                state = "cancelled"
            kind = "rollback" if state == "succeeded" and rng.random() < 0.02 else "deploy"
            wait = timedelta(seconds=rng.randint(300, 7200) if env.required_approvals else 5)
            started = at + wait if state not in ("rejected", "cancelled") else None
            finished = (started or at + wait) + timedelta(seconds=rng.randint(45, 1500))
            rows.append(
                [did, service.pk, env.pk, release, previous, kind, state, env.required_approvals, at, started, finished]
            )
            latest[(service.pk, env.pk)] = did
        # The newest deployment of some pairs is still under way: waiting for approval or rolling out.
        for (_, env_id), did in latest.items():
            row = rows[did - 1]
            env = next(e for e in envs if e.pk == env_id)
            roll = rng.random()
            if env.required_approvals and roll < 0.5:
                row[6], row[9], row[10] = "pending_approval", None, None
            elif roll < 0.55:
                row[6], row[9], row[10] = "rolling_out", row[8] + timedelta(minutes=30), None
        self.deployment_rows = rows
        cols = (
            "id, service_id, environment_id, release_id, previous_release_id, kind, state, required_approvals, "
            "created_at, started_at, finished_at, requested_by_id, reason, override_reason, jenkins_build_url, "
            "jenkins_log_offset, revision_before, revision_after, progress, downtime, last_seq, reports, "
            "automatic, image_before, baseline, followup"
        )
        fixed = ("", "", "", 0, "", "", "{}", "{}", self.events_per, "{}", False, "", "{}", "")
        copy_rows(cur, Deployment, cols, ((*row, rng.choice(self.users[:150]), *fixed) for row in rows))

    def approvals(self, cur) -> None:
        """Approvers' decisions: as many approvals as required, one rejection on rejected ones."""
        from releases.models import Approval

        rng = self.rng
        cols = "deployment_id, user_id, decision, comment, created_at"
        rows = []
        for did, _, _, _, _, _, state, required, at, started, _ in self.deployment_rows:
            if not required or state == "cancelled" and started is None:
                continue
            voters = rng.sample(self.approver_ids, required)
            if state == "rejected":
                rows.append((did, voters[0], "reject", "not now", at + timedelta(minutes=30)))
            elif state == "pending_approval":
                rows.append((did, voters[0], "approve", "", at + timedelta(minutes=5)))
            else:
                for n, user in enumerate(voters, start=1):
                    when = min(at + (started - at) * n / required, started)
                    rows.append((did, user, "approve", "", when))
        copy_rows(cur, Approval, cols, rows)

    def events(self, cur) -> None:
        cur.execute(
            """
            INSERT INTO releases_deploymentevent (deployment_id, seq, kind, message, data, actor_id, created_at)
            SELECT d.id, s.n,
                   (ARRAY['requested', 'approved', 'started', 'progress', 'progress', 'progress'])[1 + s.n %% 6],
                   'Rollout step ' || s.n || ': 2 of 3 pods updated, 2 ready, 2 available',
                   '{"updated": 2, "ready": 2}'::jsonb,
                   CASE WHEN s.n = 1 THEN d.requested_by_id END,
                   d.created_at + s.n * interval '15 seconds'
            FROM releases_deployment d CROSS JOIN generate_series(1, %s::int) AS s(n)
            """,
            [self.events_per],
        )
        self.big_deployment = self.deployment_rows[len(self.deployment_rows) // 2][0]
        cur.execute(
            """
            INSERT INTO releases_deploymentevent (deployment_id, seq, kind, message, data, actor_id, created_at)
            SELECT %s, s.n, 'log', 'console line ' || s.n, '{}'::jsonb, NULL, now()
            FROM generate_series(%s::int, %s::int) AS s(n)
            """,
            [self.big_deployment, self.events_per + 1, self.big_events],
        )
        cur.execute(
            "UPDATE releases_deployment SET last_seq = %s WHERE id = %s", [self.big_events, self.big_deployment]
        )

    def fix_sequences(self, cur) -> None:
        for table in ("releases_release", "releases_deployment"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")


# --- measuring ----------------------------------------------------------------------------------


def pages(quick: bool) -> list[tuple[str, str, dict]]:
    from django.contrib.auth.models import User

    from releases.models import Deployment, DeploymentEvent, Service

    oldest = Deployment.objects.order_by("id").values_list("id", flat=True).first()
    newest = Deployment.objects.order_by("-id").values_list("id", flat=True).first()
    service = Service.objects.order_by("slug").first()
    plain = Deployment.objects.filter(last_seq=20, state="succeeded").order_by("-id").first()
    big = Deployment.objects.order_by("-last_seq").first()
    requester = User.objects.get(pk=plain.requested_by_id).username
    middle = (plain.created_at - timedelta(days=200)).date()
    ninety = f"since={middle - timedelta(days=90)}&until={middle}"
    metrics = {"HTTP_AUTHORIZATION": f"Bearer {METRICS_TOKEN}"}
    events = DeploymentEvent.objects.filter(deployment=big).count()
    return [
        ("dashboard /", "/", {}),
        ("history first page", "/history/", {}),
        ("history service+env+state", f"/history/?service={service.slug}&environment=prod&state=failed", {}),
        ("history requester", f"/history/?requester={requester}", {}),
        ("history since/until (90 d)", f"/history/?{ninety}", {}),
        ("history deep keyset page", f"/history/?before={oldest + 120}", {}),
        ("service page", f"/services/{service.slug}/", {}),
        ("release page", f"/releases/{plain.release_id}/", {}),
        ("deployment (20 events)", f"/deployments/{plain.pk}/", {}),
        (f"deployment ({events} events)", f"/deployments/{big.pk}/", {}),
        ("approvals inbox", "/approvals/", {}),
        ("dora 90 days", "/dora/?days=90", {}),
        ("metrics", "/metrics", metrics),
    ], newest


FLOOR_URL = "/__bench_floor__/"


def install_floor() -> None:
    """The floor: a view that renders base.html (the header every page has) behind the same
    middleware, context processors and test client as the pages, served from a URLconf that
    adds it to the portal's own."""
    import types

    from django.shortcuts import render
    from django.test.utils import override_settings
    from django.urls import path

    import portal.urls

    def floor(request):
        return render(request, "base.html", {})

    module = types.ModuleType("bench_floor_urls")
    module.urlpatterns = [path(FLOOR_URL.strip("/") + "/", floor), *portal.urls.urlpatterns]
    module.handler404 = portal.urls.handler404
    module.handler500 = portal.urls.handler500
    sys.modules[module.__name__] = module
    override_settings(ROOT_URLCONF=module.__name__).enable()


def timed_get(client, url, headers) -> float:
    t0 = time.perf_counter()
    client.get(url, **headers)
    return (time.perf_counter() - t0) * 1000


def measure(client, url, headers, runs: int) -> dict:
    """A first view rendered anew (its queries captured: what rendering reads), then `runs`
    timed views, each right after a request to the floor, so load from elsewhere on the machine
    weighs on both alike. Pages keep their costly parts rendered (plumbing.fragments) until a
    change they show: the timed views are what most visitors get; `cold` is the best of a few
    views with every kept fragment dropped first, what the first visitor after a change gets."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from plumbing import fragments

    fragments.clear()
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, **headers)
    # Read now: the next request's request_started signal empties the connection's query log.
    queries = [(float(q["time"]) * 1000, q["sql"]) for q in captured.captured_queries]
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}")
    with CaptureQueriesContext(connection) as again:
        client.get(url, **headers)
    kept_queries = len(again.captured_queries)
    client.get(FLOOR_URL)
    times, floors, colds = [], [], []
    for _ in range(runs):
        floors.append(timed_get(client, FLOOR_URL, {}))
        times.append(timed_get(client, url, headers))
    for _ in range(min(runs, 5)):
        floors.append(timed_get(client, FLOOR_URL, {}))
        fragments.clear()
        colds.append(timed_get(client, url, headers))
    ms, floor = statistics.median(times), statistics.median(floors)
    # The ratio compares the best of each: on a machine shared with other work, a page's fastest
    # run is closest to its own cost, and its median is partly the neighbours' (in one run here
    # the floor's median went from 6 to 62 ms between pages).
    best_floor = min(floors)
    return {
        "ms": ms,
        "floor": floor,
        "best": min(times),
        "best_floor": best_floor,
        "ratio": min(times) / best_floor,
        "cold": min(colds),
        "cold_ratio": min(colds) / best_floor,
        "queries": queries,
        "kept_queries": kept_queries,
    }


def plan_nodes(node):
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def big_seq_scans(sql: str) -> list[str]:
    from django.db import connection

    if not sql.lstrip().upper().startswith("SELECT"):
        return []
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return [
        n["Relation Name"]
        for n in plan_nodes(plan[0]["Plan"])
        if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in BIG_TABLES
    ]


def explain_analyze(sql: str) -> tuple[float, list[str]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    lines = []

    def walk(node, depth):
        what = node["Node Type"]
        if node.get("Relation Name"):
            what += f" on {node['Relation Name']}"
        if node.get("Index Name"):
            what += f" using {node['Index Name']}"
        lines.append(
            f"{'  ' * depth}{what}  rows={node.get('Actual Rows')} loops={node.get('Actual Loops')} "
            f"time={node.get('Actual Total Time', 0):.1f} ms"
        )
        for child in node.get("Plans", [])[:6]:
            walk(child, depth + 1)

    walk(plan[0]["Plan"], 0)
    return plan[0]["Execution Time"], lines


def report(results, explain_top: int) -> None:
    print()
    head = f"{'page':34} {'median ms':>10} {'floor ms':>9} {'ratio*':>7} {'cold*':>6} {'queries**':>10}"
    print(f"{head} {'slowest q ms':>13} {'seq scans on big tables':>24}")
    print("-" * 128)
    for name, _, result in results:
        slowest = max((t for t, _ in result["queries"]), default=0.0)
        scans = sorted({table for _, sql in result["queries"] for table in big_seq_scans(sql)})
        scans = ", ".join(scans) or "-"
        counts = f"{result['kept_queries']}/{len(result['queries'])}"
        figures = (
            f"{result['ms']:>10.1f} {result['floor']:>9.1f} {result['ratio']:>6.1f}× {result['cold_ratio']:>5.1f}×"
        )
        print(f"{name:34} {figures} {counts:>10} {slowest:>13.1f} {scans:>24}")
    print("* best page run over best floor run (the floors were interleaved with the page's runs); cold: with")
    print("  every kept fragment dropped first (the first view after a change)")
    print("** queries of a view served from kept fragments / of a view rendered anew (slowest q, scans: the latter)\n")
    for name, _, result in results:
        best = f"best page {result['best']:.1f} ms, best floor {result['best_floor']:.1f} ms"
        medians = f"medians {result['ms']:.1f} and {result['floor']:.1f} ms"
        print(f"ratio {name}: {result['ratio']:.1f}×  ({best}; {medians})")
    for name, _, result in results:
        print(f"cold {name}: {result['cold_ratio']:.1f}×  (best of rendered-anew views {result['cold']:.1f} ms)")
    ranked = sorted(
        ((t, name, sql) for name, _, result in results for t, sql in result["queries"]), key=lambda x: -x[0]
    )
    print(f"\nThe {explain_top} slowest queries, EXPLAIN ANALYZE:")
    for t, name, sql in ranked[:explain_top]:
        if not sql.lstrip().upper().startswith("SELECT"):
            continue
        took, lines = explain_analyze(sql)
        print(f"\n[{name}] {t:.1f} ms in the page, {took:.1f} ms under EXPLAIN ANALYZE")
        print("  SQL: " + (sql[:300] + " …" if len(sql) > 300 else sql))
        for line in lines[:14]:
            print("    " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the rows, 3 timed runs")
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    parser.add_argument("--deployments", type=int, default=None, help="how many deployments to seed (100,000)")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--explain", type=int, default=6, help="how many of the slowest queries to EXPLAIN ANALYZE")
    args = parser.parse_args()
    configure_environment()
    deployments = args.deployments or (10_000 if args.quick else 100_000)
    runs = args.runs or (7 if args.quick else 15)
    reuse = args.reuse and database_exists()
    if not reuse:
        recreate_database()

    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    from releases.models import Deployment, DeploymentEvent

    setup_test_environment()
    install_floor()
    call_command("migrate", verbosity=0)
    if not reuse or not Deployment.objects.exists():
        print(f"Seeding {deployments:,} deployments with 20 events each into {DB_NAME} …", flush=True)
        took = Seeder(deployments, events_per=20, big_events=5000).run()["seconds"]
        print(f"  seeded in {took:.1f} s", flush=True)
    counts = {
        "deployments": Deployment.objects.count(),
        "events": DeploymentEvent.objects.count(),
    }
    print("  rows: " + ", ".join(f"{v:,} {k}" for k, v in counts.items()))

    client = Client()
    client.force_login(User.objects.get(username="approver"))
    results = []
    listed, _ = pages(args.quick)
    for name, url, headers in listed:
        results.append((name, url, measure(client, url, headers, runs)))
        result = results[-1][2]
        print(f"  {name}: {result['ms']:.1f} ms, floor {result['floor']:.1f} ms  {url}", flush=True)
    report(results, args.explain)


if __name__ == "__main__":
    main()
