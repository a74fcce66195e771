"""Command line: `python -m sandbox.jenkins --port 8081 --user jenkins --token jenkins-token`."""

import argparse

from sandbox.http import run_command

from . import start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.jenkins", description=__doc__)
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--user", default="jenkins")
    parser.add_argument("--token", default="jenkins-token")
    parser.add_argument("--seed", help="YAML or JSON file with per-job defaults")
    parser.add_argument("--kube-url", help="cluster that deploy jobs patch")
    parser.add_argument("--kube-token", help="bearer token for --kube-url")
    parser.add_argument("--notify-url", help="Notification plugin endpoint")
    parser.add_argument("--queue-seconds", type=float, default=0.5)
    parser.add_argument("--build-seconds", type=float, default=3.0)
    parser.add_argument("--password", help="the user's password (unlike the API token, it needs a crumb on POST)")
    parser.add_argument("--any-job", action="store_true", help="every job path exists (else only seeded/created)")
    parser.add_argument(
        "--notify-log-lines", type=int, default=0, help="console lines in notifications (the plugin's Log; -1: all)"
    )
    parser.add_argument("--executors", type=int, default=2, help="executors of the built-in node")
    parser.add_argument(
        "--state", dest="state_file", metavar="STATE", help="state file: jobs, queue, builds and logs survive a restart"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    run_command(parser, start, "jenkins", argv)


if __name__ == "__main__":
    main()
