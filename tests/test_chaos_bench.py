"""bench/chaos.py in miniature: two rollouts through the whole stack under kill -9, on a database
and a redis-server of its own (what `make bench` runs at full size; no time is asserted)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.support.tools import require_tool

RESULT = re.compile(
    r"^chaos: (\d+) rollouts, (\d+) faults, (\d+) correct, (\d+) stuck, (\d+) lost events, (\d+) duplicate events$"
)


@pytest.mark.timeout(300)
def test_it_ends_every_rollout_correctly_and_says_so_in_one_line():
    require_tool("redis-server")  # the script runs one of its own, to kill and restart it
    script = Path(settings.BASE_DIR) / "bench" / "chaos.py"
    database = "pampam_chaos_test"  # on the server of DATABASE_URL; dropped by the script
    result = subprocess.run(
        [sys.executable, str(script), "--rollouts", "2", "--seed", "1", "--settle", "120", "--database", database],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=280,
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout + result.stderr[-3000:]
    match = RESULT.match(lines[0])
    assert match, lines[0]
    rollouts, _faults, correct, stuck, lost, duplicate = map(int, match.groups())
    assert (rollouts, correct, stuck, lost, duplicate) == (2, 2, 0, 0, 0), result.stderr[-3000:]
    assert result.returncode == 0
    assert "stack up in" in result.stderr  # progress goes to stderr, the result line alone to stdout
