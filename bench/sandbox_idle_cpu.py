"""CPU an idle demo's sandboxes burn: the Kubernetes, Jenkins and GitHub sandboxes as `make demo`
starts them (the cluster with the demo's 9 Deployments and 21 pods, all rolled out), measured from
/proc/<pid>/stat (user + system time) over a window, next to a sleeping Python process as the
floor. Nothing is asserted: read the figures.

    .venv/bin/python bench/sandbox_idle_cpu.py [--seconds 60] [--quick] [--root DIR] [--traffic-rate 5]

`--root` runs the sandboxes of another checkout, to compare with an older commit:
`git archive <commit> sandbox | tar -x -C /tmp/before && … --root /tmp/before`.
`--traffic-rate N` has the cluster's synthetic users send N requests a second to every
Deployment, as the demo does (5), so the cost of the traffic and metrics shows.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
SERVICES = {"storefront": 4, "groupbuy-api": 3, "order-worker": 2}
ENVIRONMENTS = {"pampam-dev": 1, "pampam-staging": 2, "pampam-prod": None}


def seed() -> dict:
    deployments = [
        {
            "namespace": namespace,
            "name": name,
            "image": f"registry.pampam.local/{name}:1.2.0",
            "replicas": replicas or prod,
            "spec": {"minReadySeconds": 1},
        }
        for namespace, replicas in ENVIRONMENTS.items()
        for name, prod in SERVICES.items()
    ]
    return {"namespaces": list(ENVIRONMENTS), "deployments": deployments}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def rolled_out(kube: str) -> bool:
    with urllib.request.urlopen(f"{kube}/apis/apps/v1/deployments", timeout=5) as answer:
        items = json.loads(answer.read())["items"]
    return bool(items) and all(
        d["status"].get("availableReplicas") == d["spec"]["replicas"] == d["status"].get("updatedReplicas")
        for d in items
    )


def supports_state(root: Path) -> bool:
    usage = subprocess.run([sys.executable, "-m", "sandbox.kube", "--help"], cwd=root, capture_output=True, text=True)
    return "--state" in usage.stdout


def start(tmp: Path, base: int, root: Path, traffic_rate: float = 0) -> dict[str, subprocess.Popen]:
    (tmp / "kube-seed.json").write_text(json.dumps(seed()))
    python = sys.executable
    state = supports_state(root)
    commands = {
        "kube": [python, "-m", "sandbox.kube", "--port", str(base), "--ready-after", "2", "--seed"]
        + [str(tmp / "kube-seed.json")]
        + (["--state", str(tmp / "kube-state.json")] if state else [])
        + (["--traffic-rate", str(traffic_rate)] if traffic_rate else []),
        "jenkins": [python, "-m", "sandbox.jenkins", "--port", str(base + 1)]
        + (["--state", str(tmp / "jenkins.json")] if state else []),
        "github": [python, "-m", "sandbox.github", "--port", str(base + 2), "--repo", "pampam/storefront"],
        "floor": [python, "-c", "import time; time.sleep(3600)"],
    }
    quiet = subprocess.DEVNULL
    env = {**os.environ, "PYTHONPATH": str(root)}
    return {
        name: subprocess.Popen(argv, cwd=root, env=env, stdout=quiet, stderr=quiet) for name, argv in commands.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="a 20 s window")
    parser.add_argument("--port", type=int, default=23401)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose sandboxes run")
    parser.add_argument("--traffic-rate", type=float, default=0, help="synthetic requests a second per Deployment")
    args = parser.parse_args()
    window = 20.0 if args.quick else args.seconds
    with tempfile.TemporaryDirectory() as tmp:
        children = start(Path(tmp), args.port, args.root, args.traffic_rate)
        try:
            kube = f"http://127.0.0.1:{args.port}"
            wait_http(f"{kube}/version")
            wait_http(f"http://127.0.0.1:{args.port + 1}/")
            deadline = time.monotonic() + 60
            while not rolled_out(kube) and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(3)  # the last readiness and availability changes
            before = {name: cpu_seconds(child.pid) for name, child in children.items()}
            time.sleep(window)
            used = {name: cpu_seconds(child.pid) - before[name] for name, child in children.items()}
        finally:
            for child in children.values():
                child.terminate()
            for child in children.values():
                child.wait(timeout=10)
    floor = used.pop("floor")
    users = f", users sending {args.traffic_rate:g} requests/s to each Deployment" if args.traffic_rate else ""
    print(f"Idle sandboxes of {args.root} over {window:.0f} s{users} (CPU time / wall time, % of one core):")
    for name, seconds in used.items():
        print(f"  {name:8} {100 * seconds / window:6.2f} %   ({seconds * 1000:.0f} ms)")
    tick = f"one clock tick is {1000 / TICKS:.0f} ms"
    print(f"  floor    {100 * floor / window:6.2f} %   (a sleeping Python process; {tick})")
    print(f"  all      {100 * sum(used.values()) / window:6.2f} %")


if __name__ == "__main__":
    main()
