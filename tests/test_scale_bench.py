"""bench/history_scale.py in miniature: it seeds a history the models accept, every page answers
200 at that size, and the result has a ratio line per page (no time is asserted). Without this,
a new required column broke the seeder unnoticed."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

PAGES = 13  # bench.history_scale.pages(): dashboard, five history views, service, release, two deployments,
# approvals, dora, metrics
RATIO = re.compile(r"^ratio (.+): (\d+\.\d)×", re.MULTILINE)


@pytest.mark.timeout(300)
def test_it_seeds_a_small_history_and_prints_a_ratio_for_every_page():
    script = Path(settings.BASE_DIR) / "bench" / "history_scale.py"
    env = {**os.environ, "BENCH_SCALE_DATABASE": "pampam_bench_smoke"}  # dropped and created by the script
    result = subprocess.run(
        [sys.executable, str(script), "--deployments", "2000", "--runs", "1", "--explain", "0"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2,000 deployments" in result.stdout
    ratios = dict(RATIO.findall(result.stdout))
    assert len(ratios) == PAGES, result.stdout
    assert {"dashboard /", "dora 90 days", "metrics"} <= set(ratios)
