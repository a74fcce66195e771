"""python -m sandbox.slack --port 8005 [--hook /services/T000/B000/XXXX ...]"""

import argparse

from sandbox.http import serve_forever
from sandbox.slack import start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.slack", description=__doc__)
    parser.add_argument("--port", type=int, default=8005)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--hook", action="append", help="accept only this /services/… path (repeatable)")
    args = parser.parse_args(argv)
    handle = start(args.port, args.hook, args.host)
    print(f"Webhook URL: {handle.webhook_url}", flush=True)
    serve_forever(handle.running, "Slack")


if __name__ == "__main__":
    main()
