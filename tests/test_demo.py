"""`make demo` end to end: the demo command serves the login page and alice can log in."""

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jenkins
import pytest
import requests

from sandbox.slack.workspace import signed_interaction
from tests.support import wait_until
from tests.support.tools import require_kubectl, require_tool

ROOT = Path(__file__).resolve().parent.parent


def _free_base() -> int:
    """A port P such that P…P+7 and P+379 are free (the demo's web, sandboxes, SSO provider,
    Prometheus and Redis).

    Chosen below Linux's ephemeral range (32768+), where outgoing connections take ports.
    """
    randomness = random.Random()
    for _ in range(100):
        base = randomness.randrange(20000, 32000)
        ports = [*range(base, base + 8), base + 379]
        if all(_free(p) for p in ports):
            return base
    pytest.fail("no free ports for the demo")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def demo(tmp_path):
    port = _free_base()
    env = {
        **os.environ,
        "DEBUG": "1",
        "SECRET_KEY": "pampam-demo-secret",
        "PAMPAM_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/demo.sqlite3",
        "REDIS_URL": f"redis://127.0.0.1:{port + 379}/0",
    }
    for name in (
        "JENKINS_URL",
        "GITHUB_API_URL",
        "GRAFANA_URL",
        "SLACK_WEBHOOK_URL",
        "PORTAL_URL",
        "SLACK_API_URL",
        "PROMETHEUS_URL",
    ):
        env.pop(name, None)
    log = open(tmp_path / "demo.out", "wb")
    child = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--port", str(port), "--ready-after", "0.5"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "Ctrl-C stops everything" not in (tmp_path / "demo.out").read_text():
        assert child.poll() is None, (tmp_path / "demo.out").read_text()
        time.sleep(0.5)
    yield base, tmp_path
    os.killpg(child.pid, signal.SIGINT)
    try:
        child.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
    log.close()


def test_it_serves_the_login_page_and_alice_can_log_in(demo):
    base, var = demo
    session = requests.Session()
    page = session.get(f"{base}/accounts/login/", timeout=10)
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = session.post(
        f"{base}/accounts/login/",
        data={"username": "alice", "password": "pampam-demo", "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/accounts/login/"},
        timeout=10,
    )
    assert response.url == f"{base}/"
    assert "What runs where" in response.text
    assert "Storefront" in response.text
    assert "Sign in with SSO" in page.text
    port = int(base.rsplit(":", 1)[1])
    discovery = requests.get(f"http://127.0.0.1:{port + 6}/.well-known/openid-configuration", timeout=10).json()
    assert discovery["end_session_endpoint"]
    assert (var / "kubeconfig").exists()
    # Slack's interactivity URL takes requests signed with the demo secret, and only those.
    for secret, status in (("pampam-demo", 200), ("not-the-demo-secret", 403)):
        body, headers = signed_interaction(secret, {"type": "view_closed"})
        assert requests.post(f"{base}/hooks/slack/", data=body, headers=headers, timeout=10).status_code == status


def test_it_runs_sandboxes_that_know_its_jobs_keep_state_and_take_kubectl_apply(demo, tmp_path):
    base, var = demo
    port = int(base.rsplit(":", 1)[1])
    server = jenkins.Jenkins(f"http://127.0.0.1:{port + 2}", "pampam", "pampam-demo", timeout=10)
    for job in ("storefront/build", "groupbuy-api/build", "order-worker/build", "deploy/staging"):
        assert server.job_exists(job), job
    assert not server.job_exists("storefront/biuld")
    assert (var / "kube-state.json").exists()
    assert (var / "jenkins-state.json").exists()
    env = {**os.environ, "KUBECONFIG": str(var / "kubeconfig"), "KUBECACHEDIR": str(tmp_path / "kube-cache")}
    kubectl = require_kubectl()

    def run(*args):
        done = subprocess.run([kubectl, *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    manifest = tmp_path / "storefront.yaml"
    manifest.write_text(run("get", "deploy", "storefront", "-o", "yaml"))
    assert run("apply", "-f", str(manifest)).strip() == "deployment.apps/storefront configured"  # validation on


def test_it_runs_a_prometheus_scraping_the_sandbox_users_traffic(demo):
    """The demo's Prometheus (port + 7) scrapes the sandbox cluster, whose users keep storefront busy."""
    require_tool("prometheus")
    base, _ = demo
    prometheus = f"http://127.0.0.1:{int(base.rsplit(':', 1)[1]) + 7}"

    def served():
        answer = requests.get(
            f"{prometheus}/api/v1/query",
            params={"query": 'sum(sandbox_http_requests_total{deployment="storefront",code="200"})'},
            timeout=10,
        ).json()
        result = answer["data"]["result"]
        return bool(result) and float(result[0]["value"][1]) > 0

    wait_until(served, timeout=60, step=0.5)
