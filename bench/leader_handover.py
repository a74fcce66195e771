"""Leader handover: how long the cluster watcher is leaderless when its leader goes.

Runs two real `manage.py watch_clusters` processes with LEADER_ELECTION on against a sandbox
cluster (this process) and a throw-away PostgreSQL database, then repeatedly takes the leader
away — alternately killed (SIGKILL: the standby must wait the lease out) and stopped cleanly
(SIGTERM: the leader releases the Lease) — and times, from the signal, until the Lease names the
other process. The killed one is started again as the new standby. The bound for a kill is the
lease duration plus one retry period (the standby's next round); for a clean stop, one retry
period.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pampam_bench REDIS_URL=redis://127.0.0.1:6379/6 \\
        .venv/bin/python bench/leader_handover.py [--rounds 10] [--lease 15 --renew 10 --retry 2] [--quick]

The database named by DATABASE_URL is dropped and re-created.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ws_latency import ROOT, fresh_database, make_world, setup_django


def start_watcher(name: str, env: dict) -> subprocess.Popen:
    alive_file(env, name).unlink(missing_ok=True)
    return subprocess.Popen(
        [sys.executable, "manage.py", "watch_clusters", "--name", name],
        cwd=ROOT,
        env={**env, "POD_NAME": name, "PAMPAM_ALIVE_FILE": str(alive_file(env, name))},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def alive_file(env: dict, name: str) -> Path:
    return Path(env["KUBECONFIG"]).parent / f"alive-{name}"


def campaigning(env: dict, name: str) -> bool:
    """The process has run a round of the election (it touches its liveness file every round)."""
    return alive_file(env, name).exists()


def holder(api) -> str:
    from plumbing.integrations import kube

    lease = kube.read_lease(api, "default", "pampam-watcher") or {}
    return ((lease.get("spec") or {}).get("holderIdentity") or "").rsplit("_", 1)[0]


def wait_for(predicate, timeout: float = 120.0, step: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise SystemExit(f"not within {timeout}s: {predicate}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--lease", type=int, default=15, help="seconds (client-go's and the portal's default)")
    parser.add_argument("--renew", type=int, default=10)
    parser.add_argument("--retry", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="4 rounds on 6/4/1 s terms")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.lease, args.renew, args.retry = 4, 6, 4, 1

    fresh_database()
    setup_django()
    from plumbing.integrations import kube
    from sandbox.kube import start

    sandbox = start(ready_after=0.1, seed={"namespaces": ["prod"]})
    make_world(sandbox.url, ["storefront"])
    sandbox.create_deployment("prod", "storefront", "registry.example/storefront:1.0", replicas=2)
    config = Path(tempfile.mkdtemp()) / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: sandbox\n  cluster: {{server: '{sandbox.url}'}}\n"
        "contexts:\n- name: sandbox\n  context: {cluster: sandbox, user: me}\n"
        "current-context: sandbox\nusers:\n- name: me\n  user: {}\n"
    )
    env = {
        **os.environ,
        "KUBECONFIG": str(config),
        "LEADER_ELECTION": "1",
        "LEADER_ELECTION_NAMESPACE": "default",
        "LEADER_ELECTION_LEASE_SECONDS": str(args.lease),
        "LEADER_ELECTION_RENEW_SECONDS": str(args.renew),
        "LEADER_ELECTION_RETRY_SECONDS": str(args.retry),
    }
    os.environ["KUBECONFIG"] = str(config)
    api = kube.local_client()
    processes = {name: start_watcher(name, env) for name in ("w1", "w2")}
    results: dict[str, list[float]] = {"SIGKILL": [], "SIGTERM": []}
    try:
        for round_ in range(args.rounds):
            leader = wait_for(lambda: holder(api))
            other = "w2" if leader == "w1" else "w1"
            # A standby in its steady state: booted, campaigning, and it has seen a renewal.
            wait_for(lambda other=other: campaigning(env, other))
            time.sleep(args.retry * 2)
            sig = signal.SIGKILL if round_ % 2 == 0 else signal.SIGTERM
            sent = time.monotonic()
            processes[leader].send_signal(sig)
            wait_for(lambda other=other: holder(api) == other)
            results[sig.name].append(time.monotonic() - sent)
            processes[leader].wait()
            processes[leader] = start_watcher(leader, env)
    finally:
        for process in processes.values():
            process.terminate()
            process.wait()
        sandbox.stop()

    print(f"lease {args.lease} s, renew deadline {args.renew} s, retry {args.retry} s; {args.rounds} handovers")
    for name, bound in (("SIGKILL", args.lease + 2 * args.retry), ("SIGTERM", args.retry)):
        times = results[name]
        if times:
            worst = max(times)
            print(
                f"  leader {name} ×{len(times)}: handover min {min(times):.2f} s, median "
                f"{statistics.median(times):.2f} s, max {worst:.2f} s; "
                f"bound {bound} s, max/bound {worst / bound:.2f}, max/lease {worst / args.lease:.2f}"
            )


if __name__ == "__main__":
    main()
