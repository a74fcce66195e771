"""Liveness by file, for processes that serve no HTTP (worker, cron, watcher).

A process whose main loop turns touches `$PAMPAM_ALIVE_FILE`; the kubelet's exec probe runs
`python -m plumbing.alive FILE SECONDS`, which fails when the file is older than SECONDS (or
missing), so a wedged loop gets its container restarted. The probe imports nothing of Django:
it must cost milliseconds, not a settings import.
"""

import os
import sys
import time
from pathlib import Path

ENV = "PAMPAM_ALIVE_FILE"


def touch(path: str | None = None) -> None:
    """Mark this process alive now (a no-op when no file is configured)."""
    path = path if path is not None else os.environ.get(ENV, "")
    if path:
        Path(path).touch()


def fresh(path: str, max_age: float) -> bool:
    """Was `path` touched within the last `max_age` seconds?"""
    try:
        return time.time() - Path(path).stat().st_mtime <= max_age
    except OSError:
        return False


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m plumbing.alive FILE MAX_AGE_SECONDS", file=sys.stderr)
        return 2
    path, max_age = argv[0], float(argv[1])
    if fresh(path, max_age):
        return 0
    print(f"{path} is missing or older than {max_age:g}s: the process loop is stuck", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
