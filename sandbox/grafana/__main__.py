"""python -m sandbox.grafana --port 8004 [--token T]"""

import argparse

from sandbox.grafana import start
from sandbox.http import serve_forever


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.grafana", description=__doc__)
    parser.add_argument("--port", type=int, default=8004)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", help="require Authorization: Bearer <token> on the API")
    args = parser.parse_args(argv)
    serve_forever(start(args.port, args.token, args.host).running, "Grafana")


if __name__ == "__main__":
    main()
