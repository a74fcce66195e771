"""python -m sandbox.slack --port 8005 [--hook /services/T000/B000/XXXX ...] [--interactivity-url URL]"""

import argparse

from sandbox.http import serve_forever
from sandbox.slack import start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.slack", description=__doc__)
    parser.add_argument("--port", type=int, default=8005)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--hook", action="append", help="accept only this /services/… path (repeatable)")
    parser.add_argument("--interactivity-url", default="", help="where clicks go (the portal's /hooks/slack/)")
    parser.add_argument("--bot-token", default="xoxb-sandbox-token")
    parser.add_argument("--signing-secret", default="pampam-demo")
    args = parser.parse_args(argv)
    handle = start(
        args.port,
        args.hook,
        args.host,
        interactivity_url=args.interactivity_url,
        bot_token=args.bot_token,
        signing_secret=args.signing_secret,
    )
    print(f"Webhook URL: {handle.webhook_url}", flush=True)
    print(f"Web API: {handle.api_url} (bot token {handle.bot_token})", flush=True)
    serve_forever(handle.running, "Slack")


if __name__ == "__main__":
    main()
