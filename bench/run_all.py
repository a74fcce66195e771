"""Run every benchmark in bench/ one after another and print what each one prints (`make bench`).

Each script runs in its own process. Some drop and re-create the database their DATABASE_URL
names and flush their Redis db, so each gets its own: `pampam_bench_<script>` on the
PostgreSQL server of DATABASE_URL, and the Redis db of BENCH_REDIS_URL (default: db 15 on
the REDIS_URL server; chaos.py starts a redis-server of its own, since it kills and restarts
it). Scripts that accept `--quick` get it unless `--full` is given.

    .venv/bin/python bench/run_all.py [--full] [--only history_scale ws_latency]
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent


def scripts(only: list[str]) -> list[Path]:
    found = sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_"))
    return [p for p in found if not only or p.stem in only]


def environment_for(script: Path) -> dict:
    env = dict(os.environ)
    database = urlsplit(env.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/pampam")
    env["DATABASE_URL"] = database._replace(path=f"/pampam_bench_{script.stem}").geturl()
    redis = urlsplit(env.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    env["REDIS_URL"] = env.get("BENCH_REDIS_URL") or redis._replace(path="/15").geturl()
    env.setdefault("SECRET_KEY", "bench")
    return env


def command_for(script: Path, full: bool) -> list[str]:
    quick = not full and "--quick" in script.read_text()
    return [sys.executable, str(script), *(["--quick"] if quick else [])]


def main() -> int:
    parser = argparse.ArgumentParser(description="Run every benchmark in bench/.")
    parser.add_argument("--full", action="store_true", help="do not pass --quick")
    parser.add_argument("--only", nargs="+", default=[], help="script names without .py")
    args = parser.parse_args()
    failed = []
    for script in scripts(args.only):
        command = command_for(script, args.full)
        print(f"\n=== {script.name} {' '.join(command[2:])}".rstrip(), flush=True)
        started = time.monotonic()
        result = subprocess.run(command, env=environment_for(script), cwd=HERE.parent, check=False)
        print(f"=== {script.name}: exit {result.returncode} after {time.monotonic() - started:.0f} s", flush=True)
        if result.returncode:
            failed.append(script.name)
    if failed:
        print(f"\nFailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
