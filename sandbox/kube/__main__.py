"""`python -m sandbox.kube`: run the fake Kubernetes API server (see sandbox/kube/__init__.py)."""

import argparse

from sandbox.http import run_command

from . import KubeSandbox


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.kube", description=__doc__)
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--host", default="127.0.0.1", help="(only 127.0.0.1 is supported)")
    parser.add_argument("--ready-after", type=float, default=2.0, help="seconds until pods Ready")
    parser.add_argument("--seed", help="YAML or JSON file of namespaces and deployments")
    parser.add_argument("--token", help="require 'Authorization: Bearer TOKEN'")
    parser.add_argument("--crash-backoff", type=float, default=10.0, help="the kubelet's first restart back-off")
    parser.add_argument(
        "--terminate-after", type=float, help="seconds a deleted pod stays Terminating (default: min(1, ready-after))"
    )
    parser.add_argument("--state", help="state file: objects survive a restart (the seed only starts a new one)")
    parser.add_argument("--traffic-rate", type=float, default=0.0, help="synthetic requests a second per Deployment")
    parser.add_argument("--bookmark-interval", type=float, default=60.0)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    run_command(parser, KubeSandbox, "kube", argv, ignored={"host"})


if __name__ == "__main__":
    main()
