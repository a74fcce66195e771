"""`--state FILE`: a sandbox killed with `kill -9` and started again on its state file comes back
with the same objects, revisions, queue ids, build numbers and logs, and finishes what it was
doing. The sandboxes run as the demo runs them: `python -m sandbox.kube|jenkins` processes."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import jenkins
import pytest
from kubernetes import client

from tests.sandbox.conftest import Kubectl, api_client
from tests.support import free_port, wait_until
from tests.support.tools import require_kubectl

ROOT = Path(__file__).resolve().parents[2]
NS = "default"


class Process:
    """One sandbox process on a fixed port, killed and started again at will."""

    def __init__(self, module: str, port: int, *args: str):
        self.argv = [sys.executable, "-m", module, "--port", str(port), *args]
        self.port = port
        self.child: subprocess.Popen | None = None

    def start(self) -> "Process":
        self.child = subprocess.Popen(self.argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def listening():
            assert self.child.poll() is None, f"{self.argv} exited with {self.child.returncode}"
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(listening, what=f"{self.argv[2]} on port {self.port}")
        return self

    def kill(self) -> None:
        os.kill(self.child.pid, signal.SIGKILL)
        self.child.wait(timeout=10)

    def stop(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            self.child.wait(timeout=10)


@pytest.fixture
def processes():
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


def deployment_body(image: str) -> dict:
    labels = {"app": "web"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 4,
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": image}]}},
        },
    }


def snapshot(apps: client.AppsV1Api) -> dict:
    d = apps.read_namespaced_deployment("web", NS)
    replica_sets = apps.list_namespaced_replica_set(NS).items
    return {
        "uid": d.metadata.uid,
        "resourceVersion": d.metadata.resource_version,
        "generation": d.metadata.generation,
        "revision": d.metadata.annotations["deployment.kubernetes.io/revision"],
        "replicaSets": sorted(
            (rs.metadata.name, rs.metadata.uid, rs.metadata.annotations["deployment.kubernetes.io/revision"])
            for rs in replica_sets
        ),
    }


def test_it_brings_a_killed_cluster_back_from_its_state_file_and_finishes_the_rollout(processes, tmp_path):
    port, state = free_port(), tmp_path / "cluster.json"
    kube = Process("sandbox.kube", port, "--ready-after", "1", "--state", str(state)).start()
    processes.append(kube)
    url = f"http://127.0.0.1:{port}"
    apps = client.AppsV1Api(api_client(url))
    apps.create_namespaced_deployment(NS, deployment_body("nginx:1.0"))
    kubectl = Kubectl(url, tmp_path, require_kubectl())
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    kubectl("set", "image", "deployment/web", "app=nginx:1.1")
    wait_until(lambda: apps.read_namespaced_deployment("web", NS).status.updated_replicas, what="the rollout to start")
    before = snapshot(apps)
    assert before["revision"] == "2"

    kube.kill()
    kube.start()

    assert snapshot(apps) == before  # same objects, resourceVersions, revisions and uids
    status = kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert 'deployment "web" successfully rolled out' in status.stdout
    pods = client.CoreV1Api(api_client(url)).list_namespaced_pod(NS, label_selector="app=web").items
    running = [p for p in pods if p.metadata.deletion_timestamp is None]
    assert {p.spec.containers[0].image for p in running} == {"nginx:1.1"}
    assert apps.read_namespaced_deployment("web", NS).metadata.uid == before["uid"]


def test_it_brings_a_killed_jenkins_back_with_its_queue_ids_build_numbers_and_logs(processes, tmp_path):
    port, state = free_port(), tmp_path / "jenkins.json"
    seed = tmp_path / "seed.json"
    seed.write_text('{"jobs": {"shop/build": {"duration": 4, "log_lines": 8}}}')
    args = ["--state", str(state), "--seed", str(seed), "--queue-seconds", "0.1"]
    sandbox = Process("sandbox.jenkins", port, *args).start()
    processes.append(sandbox)
    server = jenkins.Jenkins(f"http://127.0.0.1:{port}", "jenkins", "jenkins-token", timeout=10)
    first = server.build_job("shop/build", {"VERSION": "1.0"})
    wait_until(lambda: server.get_queue_item(first).get("executable"), what="build #1 to start")
    wait_until(lambda: "compiling module 2/8" in server.get_build_console_output("shop/build", 1), what="some log")
    log_before = server.get_build_console_output("shop/build", 1)

    sandbox.kill()
    sandbox.start()

    assert server.get_queue_item(first)["executable"]["number"] == 1
    info = wait_until(
        lambda: (i := server.get_build_info("shop/build", 1)) and not i["building"] and i, what="build #1"
    )
    assert info["result"] == "SUCCESS"
    log = server.get_build_console_output("shop/build", 1)
    assert log.startswith(log_before)
    assert "after Jenkins restart" in log
    assert log.endswith("Finished: SUCCESS\n")
    second = server.build_job("shop/build", {"VERSION": "1.1"})
    assert second == first + 1
    number = wait_until(lambda: server.get_queue_item(second).get("executable"), what="build #2")["number"]
    assert number == 2
