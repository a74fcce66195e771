"""Schemathesis fuzzes the API of a running portal from its live OpenAPI schema (/api/schema/):
examples, coverage, fuzzing and stateful phases (following the schema's links from a created
release to its deployment, approvals and cancel), every check, no 5xx, every response as the
schema says.

It runs as its own process (the `schemathesis` command), as it would against any deployment.
"""

import subprocess
import sys
from pathlib import Path

from django.contrib.auth.models import Group

from tests.factories import make_release, make_user
from tests.support.api import token_for
from tests.support.stack import in_thread

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def fuzzer(cast):
    """A superuser in every group: most writes are allowed, so the fuzzing reaches past the rules."""
    user = make_user("fuzzer", *Group.objects.all(), is_staff=True, is_superuser=True)
    cast.service.jenkins_build_job = "storefront/build"
    cast.service.save()
    make_release(cast.service, version="1.0.0")
    return token_for(user, "admin")


def test_schemathesis_finds_no_server_error_and_no_nonconforming_response(stack, settings, tmp_path):
    # Bounded waits keep generated long-polls short; the schema's maximum follows the setting.
    settings.API_LONG_POLL_MAX_SECONDS = 1
    token = in_thread(fuzzer, stack.cast)
    done = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{stack.url}/api/schema/?format=json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            "all",
            # Valid-looking input that names no existing release, service or user is rightly a 400 or 404.
            "--exclude-checks",
            "positive_data_acceptance",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            "25",
            "--seed",
            "14",
            "--workers",
            "2",
            "--request-timeout",
            "20",
            "--suppress-health-check",
            "too_slow,filter_too_much",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
            "--output-truncate",
            "false",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=tmp_path,
        check=False,
    )
    (Path("/tmp/st_out.txt")).write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-5000:]
    assert " passed" in done.stdout
