"""`manage.py demo`: the whole portal on one machine, no PostgreSQL or Redis server needed.

Starts Redis (the real `redis-server` when installed, otherwise fakeredis's TCP server in
this process — the same RQ and Channels code paths either way), the sandboxes (Kubernetes,
Jenkins, GitHub, Grafana, Slack), migrates and seeds SQLite, writes var/kubeconfig, then runs
the web server (uvicorn, ASGI), an RQ worker, the RQ cron scheduler and the cluster watcher.
Ctrl-C stops everything it started.

The sandbox cluster and Jenkins keep their state in var/kube-state.json and
var/jenkins-state.json, so stopping and starting the demo (or a crashed sandbox) carries on with
the same objects, revisions, build numbers and logs. A freshly seeded database starts them anew
from the seeds (var/kube-seed.json, var/jenkins-seed.json), so cluster and history agree.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from portal import demo_data
from sandbox.http import listening

TOKEN = "pampam-demo"
STATE_FILES = ("kube-state.json", "jenkins-state.json")
# Provider groups → portal groups, and the people the demo's identity provider knows (one click
# each on its sign-in page). Dana leads (deploys to prod, approves), Eve develops.
DEMO_GROUP_MAP = "eng=developers,eng-leads=release-managers,eng-leads=approvers"
DEMO_SSO_USERS = [
    {"sub": "dana", "email": "dana@pampam.local", "preferred_username": "dana", "groups": ["eng", "eng-leads"]},
    {"sub": "eve", "email": "eve@pampam.local", "preferred_username": "eve", "groups": ["eng"]},
]


class Command(BaseCommand):
    help = "Run the portal with sandboxes and seeded data (what `make demo` runs)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
        parser.add_argument("--ready-after", type=float, default=2.0, help="Seconds until sandbox pods are ready.")
        parser.add_argument("--no-serve", action="store_true", help="Prepare everything, start nothing (tests).")
        parser.add_argument(
            "--web",
            type=int,
            default=int(os.environ.get("WEB_PROCESSES", 2)),
            help="Web processes (uvicorn workers): one per core; they share live streams through Redis.",
        )

    def handle(self, *args, port, ready_after, no_serve, web, **options):
        self.children: list[subprocess.Popen] = []
        self.var = Path(settings.VAR_DIR)
        self.var.mkdir(parents=True, exist_ok=True)
        ports = demo_data.Ports(
            kube=port + 1, jenkins=port + 2, github=port + 3, grafana=port + 4, slack=port + 5, prometheus=port + 7
        )
        env = self._environment(port, ports)
        # Explicitly: a shell starting us in the background would have us ignore SIGINT.
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            if not no_serve:
                self._start_redis()
            call_command("migrate", verbosity=0, interactive=False)
            created = demo_data.seed(ports, TOKEN)
            self.stdout.write("Seeded demo data." if created else "Demo data already present.")
            if created:  # a new history: the sandboxes start from their seeds too
                for name in STATE_FILES:
                    (self.var / name).unlink(missing_ok=True)
            seed_file = self.var / "kube-seed.json"
            seed_file.write_text(json.dumps(demo_data.cluster_seed(), indent=1))
            (self.var / "jenkins-seed.json").write_text(json.dumps(demo_data.jenkins_seed(), indent=1))
            self._write_kubeconfig(ports.kube)
            if no_serve:
                return
            self._start_sandboxes(ports, seed_file, ready_after, port)
            self._start_prometheus(ports, port)
            self._start_portal(port, env, max(1, web))
            self._banner(port, ports)
            self._wait()
        except KeyboardInterrupt:
            self.stdout.write("\nStopping…")
        finally:
            self._stop()

    def _environment(self, port: int, ports: demo_data.Ports) -> dict:
        values = {
            "PORTAL_URL": f"http://127.0.0.1:{port}",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CSRF_TRUSTED_ORIGINS": f"http://127.0.0.1:{port},http://localhost:{port}",
            "JENKINS_URL": f"http://127.0.0.1:{ports.jenkins}",
            "JENKINS_USER": "pampam",
            "JENKINS_TOKEN": TOKEN,
            "JENKINS_WEBHOOK_SECRET": TOKEN,
            "GITHUB_API_URL": f"http://127.0.0.1:{ports.github}/api/v3",
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_WEBHOOK_SECRET": TOKEN,
            "GRAFANA_URL": f"http://127.0.0.1:{ports.grafana}",
            "GRAFANA_TOKEN": TOKEN,
            "SLACK_WEBHOOK_URL": f"http://127.0.0.1:{ports.slack}/services/T0DEMO/B0DEMO/pampam",
            # Approvals from Slack: the sandbox's bot and its demo signing secret.
            "SLACK_BOT_TOKEN": "xoxb-sandbox-token",
            "SLACK_SIGNING_SECRET": "pampam-demo",
            "SLACK_CHANNEL": "deploys",
            "SLACK_API_URL": f"http://127.0.0.1:{ports.slack}/api/",
            "METRICS_TOKEN": TOKEN,
            # Only when the binary is there: without it the deployment page says checks cannot run.
            "PROMETHEUS_URL": f"http://127.0.0.1:{ports.prometheus}" if shutil.which("prometheus") else "",
            "RECONCILE_INTERVAL_SECONDS": "15",
            # Single sign-on against the demo's own OpenID Connect provider (oidc-provider-mock).
            "OIDC_ISSUER": f"http://127.0.0.1:{port + 6}",
            "OIDC_CLIENT_ID": "pampam-demo",
            "OIDC_CLIENT_SECRET": TOKEN,
            "OIDC_GROUP_MAP": DEMO_GROUP_MAP,
        }
        for name, value in values.items():
            os.environ.setdefault(name, value)
        return dict(os.environ)

    def _start_redis(self) -> None:
        url = urlsplit(settings.REDIS_URL)
        host, port = url.hostname or "127.0.0.1", url.port or 6379
        if _redis_answers(settings.REDIS_URL):
            self.stdout.write(f"Using the Redis already running at {host}:{port}.")
            return
        server = shutil.which("redis-server")
        if server:
            self._spawn("redis", [server, "--port", str(port), "--bind", host, "--save", "", "--appendonly", "no"])
            label = "redis-server"
        else:
            from fakeredis import TcpFakeServer

            self.fake_redis = TcpFakeServer((host, port), server_type="redis")
            threading.Thread(target=self.fake_redis.serve_forever, daemon=True).start()
            label = "the embedded Redis stand-in (fakeredis; install redis-server to use the real one)"
        _wait_until(lambda: _redis_answers(settings.REDIS_URL), f"Redis on port {port}")
        self.stdout.write(f"Started {label} on {host}:{port}.")

    def _start_sandboxes(self, ports, seed_file, ready_after, port) -> None:
        python = sys.executable
        kube = f"http://127.0.0.1:{ports.kube}"
        self._spawn(
            "kube",
            [
                python,
                "-m",
                "sandbox.kube",
                "--port",
                str(ports.kube),
                "--ready-after",
                str(ready_after),
                "--seed",
                str(seed_file),
                "--state",
                str(self.var / "kube-state.json"),
                "--traffic-rate",
                "5",
            ],
        )
        notify = f"http://127.0.0.1:{port}/hooks/jenkins/?token={TOKEN}"
        self._spawn(
            "jenkins",
            [
                python,
                "-m",
                "sandbox.jenkins",
                "--port",
                str(ports.jenkins),
                "--user",
                "pampam",
                "--token",
                TOKEN,
                "--kube-url",
                kube,
                "--notify-url",
                notify,
                "--seed",
                str(self.var / "jenkins-seed.json"),
                "--state",
                str(self.var / "jenkins-state.json"),
            ],
        )
        repos = []
        for slug, *_ in demo_data.SERVICES:
            repos += ["--repo", f"{demo_data.GITHUB_OWNER}/{slug}", "--commits", str(demo_data.COMMITS_PER_REPO)]
        self._spawn("github", [python, "-m", "sandbox.github", "--port", str(ports.github), "--token", TOKEN, *repos])
        self._spawn("grafana", [python, "-m", "sandbox.grafana", "--port", str(ports.grafana), "--token", TOKEN])
        interactivity = f"http://127.0.0.1:{port}/hooks/slack/"
        self._spawn(
            "slack",
            [python, "-m", "sandbox.slack", "--port", str(ports.slack), "--interactivity-url", interactivity]
            + ["--bot-token", "xoxb-sandbox-token", "--signing-secret", "pampam-demo"],
        )
        sso_users = [arg for user in DEMO_SSO_USERS for arg in ("--user-claims", json.dumps(user))]
        self._spawn(
            "sso",
            [python, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port + 6)]
            + ["--require-nonce", *sso_users],
        )
        for name, p in [
            ("kube", ports.kube),
            ("jenkins", ports.jenkins),
            ("github", ports.github),
            ("grafana", ports.grafana),
            ("slack", ports.slack),
            ("sso", port + 6),
        ]:
            self._wait_for(name, p)

    def _start_prometheus(self, ports, port: int) -> None:
        """Debian's `prometheus`, when installed, scraping the sandbox cluster's /metrics (what the
        storefront checks read) and the portal's own."""
        server = shutil.which("prometheus")
        if not server:
            self.stdout.write("No prometheus binary found: checks cannot be evaluated (apt install prometheus).")
            return
        if os.environ.get("PROMETHEUS_URL") != f"http://127.0.0.1:{ports.prometheus}":
            return  # PROMETHEUS_URL names another Prometheus: use that one
        config = self.var / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 5s, evaluation_interval: 5s}\n"
            "scrape_configs:\n"
            "  - job_name: sandbox\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{ports.kube}']}}]\n"
            "  - job_name: pampam\n"
            f"    authorization: {{type: Bearer, credentials: {TOKEN}}}\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
        )
        self._spawn(
            "prometheus",
            [
                server,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.var / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{ports.prometheus}",
                "--log.level=warn",
            ],
        )
        self._wait_for("prometheus", ports.prometheus)

    def _start_portal(self, port: int, env: dict, web: int) -> None:
        python, manage = sys.executable, str(Path(settings.BASE_DIR) / "manage.py")
        self._spawn(
            "web",
            [
                python,
                "-m",
                "uvicorn",
                "portal.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                # X-Forwarded-* is the portal's business (TRUSTED_PROXIES), not uvicorn's.
                "--no-proxy-headers",
                # Each worker subscribes once per live stream; Redis fans messages out to them.
                "--workers",
                str(web),
            ],
            env,
        )
        self._spawn("worker", [python, manage, "rqworker", "default", "--with-scheduler"], env)
        self._spawn("cron", [python, manage, "rqcron", "portal.cron"], env)
        self._spawn("watcher", [python, manage, "watch_clusters"], env)
        self._wait_for("web", port, timeout=60)

    def _wait_for(self, name: str, port: int, timeout: float = 30) -> None:
        """Wait until the child `name` listens on `port`; fail at once, with its log, if it died."""
        child = next(c for c in self.children if c.name == name)

        def ready():
            if child.poll() is not None:
                log = (self.var / f"demo-{name}.log").read_text(errors="replace").strip().splitlines()
                raise CommandError(f"The {name} process stopped: {log[-1] if log else 'no output'}")
            return listening(port)

        _wait_until(ready, f"the {name} process on port {port}", timeout)

    def _spawn(self, name: str, argv: list[str], env: dict | None = None) -> None:
        log = open(self.var / f"demo-{name}.log", "ab")
        child = subprocess.Popen(
            argv,
            preexec_fn=_die_with_parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env or dict(os.environ),
            cwd=settings.BASE_DIR,
            start_new_session=True,
        )
        child.name = name
        self.children.append(child)

    def _write_kubeconfig(self, kube_port: int) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "pampam-demo", "cluster": {"server": f"http://127.0.0.1:{kube_port}"}}],
            # kubectl sends no bearer token over plain http; the sandbox asks for none.
            "users": [{"name": "pampam-demo", "user": {}}],
            "contexts": [
                {
                    "name": "pampam-demo",
                    "context": {"cluster": "pampam-demo", "user": "pampam-demo", "namespace": "pampam-prod"},
                }
            ],
            "current-context": "pampam-demo",
        }
        path = self.var / "kubeconfig"
        path.write_text(json.dumps(config, indent=1))
        path.chmod(0o600)

    def _banner(self, port, ports) -> None:
        self.stdout.write(self.style.SUCCESS(f"\nPampam release portal: http://127.0.0.1:{port}/\n"))
        self.stdout.write(f"  Log in as admin, alice, bob or carol with the password {demo_data.PASSWORD}")
        self.stdout.write("    alice: developer + approver · bob: developer, release manager + approver")
        self.stdout.write("    carol: release manager + approver")
        self.stdout.write("    admin: superuser — the admin site at /admin/, and release admin (deploy, roll back,")
        self.stdout.write("           override freezes and locks anywhere; every use shows in the timeline)")
        self.stdout.write("  A storefront deployment to prod waits for two approvals: log in as alice, then carol.")
        self.stdout.write(
            f'  Or "Sign in with SSO" (provider at http://127.0.0.1:{port + 6}/): dana (groups eng, eng-leads →'
        )
        self.stdout.write("    developer, release manager, approver) or eve (eng → developer), created at first login")
        self.stdout.write(f"  kubectl:  KUBECONFIG={self.var / 'kubeconfig'} kubectl get deploy -A")
        self.stdout.write(f"  Jenkins:  http://127.0.0.1:{ports.jenkins}/  (pampam / {TOKEN})")
        self.stdout.write(f"  GitHub:   http://127.0.0.1:{ports.github}/api/v3/  (webhook secret {TOKEN})")
        self.stdout.write(f"  Grafana:  http://127.0.0.1:{ports.grafana}/")
        self.stdout.write(f"  Slack:    http://127.0.0.1:{ports.slack}/  (messages; click Approve or Reject as anyone)")
        self.stdout.write(f"  Metrics:  curl -H 'Authorization: Bearer {TOKEN}' http://127.0.0.1:{port}/metrics")
        if os.environ.get("PROMETHEUS_URL"):
            self.stdout.write(f"  Prometheus: {os.environ['PROMETHEUS_URL']}/  (storefront's 5xx and latency checks;")
            self.stdout.write("    deploy storefront 1.5.0-errors to Dev to watch one fail and roll back)")
        self.stdout.write(f"  Logs in {self.var}/demo-*.log. Ctrl-C stops everything.\n")

    def _wait(self) -> None:
        while True:
            for child in self.children:
                if child.poll() is not None:
                    raise CommandError(
                        f"The {child.name} process stopped (exit {child.returncode}); see var/demo-{child.name}.log."
                    )
            time.sleep(0.5)

    def _stop(self) -> None:
        # A second Ctrl-C must not cut the clean-up short and leave children behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in reversed(self.children):
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in self.children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
        if getattr(self, "fake_redis", None):
            self.fake_redis.shutdown()


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if the demo itself is killed, so nothing is left behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _interrupt(*_):
    raise KeyboardInterrupt


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def _wait_until(check, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise CommandError(f"Timed out waiting for {what}.")
