"""Bytes fetched while tailing a Jenkins console log by byte offset vs the log's size.

Starts the Jenkins sandbox, runs a 2,000-line build, and tails it the way
releases.builds does (plumbing.integrations.jenkins.progressive_log from the last offset,
polled every 50 ms). Prints the log size, the bytes received, the number of requests, and
what re-downloading consoleText on every poll would have cost instead.

    DJANGO_SETTINGS_MODULE=portal.settings SECRET_KEY=x python bench/jenkins_log_tail.py
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("SECRET_KEY", "bench")

import django

django.setup()

from django.conf import settings  # noqa: E402

from plumbing.integrations import jenkins  # noqa: E402
from sandbox.jenkins import start  # noqa: E402

LINES = 2000
POLL = 0.05


def main() -> None:
    sandbox = start(queue_seconds=0.05, build_seconds=2.0, seed={"jobs": {"bench-build": {}}})
    settings.JENKINS_URL, settings.JENKINS_USER, settings.JENKINS_TOKEN = sandbox.url, sandbox.user, sandbox.token
    try:
        queue_id = jenkins.start_job("bench-build", {"SANDBOX_LOG_LINES": str(LINES)})
        while (item := jenkins.queue_item(queue_id)).state == jenkins.WAITING:
            time.sleep(POLL)
        offset, received, polls, naive = 0, 0, 0, 0
        while True:
            chunk = jenkins.progressive_log("bench-build", item.number, offset)
            polls += 1
            received += chunk.size
            naive += len(sandbox.get_build("bench-build", item.number).log)  # what a full re-read costs
            offset = chunk.next_offset
            if not chunk.more:
                break
            time.sleep(POLL)
        console = jenkins.console_text("bench-build", item.number).encode()
        size, lines = len(console), console.count(b"\n")
    finally:
        sandbox.stop()
    print(f"log: {lines} lines, {size} bytes; tailed in {polls} requests")
    print(f"bytes fetched by offset: {received} ({received / size:.3f}x the log)")
    print(f"bytes a consoleText re-read per poll would fetch: {naive} ({naive / size:.1f}x the log)")


if __name__ == "__main__":
    main()
