"""python -m sandbox.github --port 8003 --repo acme/web --commits 20 [--token T] [--seed FILE]"""

import argparse

from sandbox.github import start
from sandbox.http import serve_forever


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox.github", description=__doc__)
    parser.add_argument("--port", type=int, default=8003)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", help="require this token (Authorization: token/Bearer)")
    parser.add_argument("--seed", help="YAML or JSON seed file (tags, branches, authors, messages)")
    parser.add_argument("--repo", action="append", default=[], help="OWNER/NAME; repeatable")
    parser.add_argument("--commits", action="append", type=int, default=[], help="commits for the preceding --repo")
    args = parser.parse_args(argv)
    if len(args.commits) > len(args.repo):
        parser.error("each --commits needs a preceding --repo")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    # A --repo without its own --commits gets 10.
    counts = args.commits + [10] * (len(args.repo) - len(args.commits))
    handle = start(args.port, args.token, dict(zip(args.repo, counts, strict=True)), args.seed, args.host)
    serve_forever(handle.running, "GitHub")


if __name__ == "__main__":
    main()
