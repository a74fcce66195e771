"""The `pampam` CLI as a separate process against a running portal and the sandbox cluster:
release, deploy with --wait through approvals made with other people's tokens, the exit
codes of every ending, status; and that it installs with pip and imports nothing of the portal."""

import ast
import re
import shutil
import subprocess
import sys
import time

import pytest

from releases import states
from releases.models import Deployment, Release
from tests.factories import make_deployment, make_release
from tests.support import cli
from tests.support.api import token_for
from tests.support.stack import in_thread

WAIT = ["--wait", "--timeout", "240"]


def deployment_id(process: subprocess.Popen) -> int:
    """Read the first line `pampam deploy` prints: "Deployment #12: …"."""
    line = process.stdout.readline()
    found = re.match(r"(?:Deployment|Rollback) #(\d+):", line)
    assert found, line
    return int(found.group(1))


def finished(process: subprocess.Popen) -> tuple[int, str]:
    return cli.output_of(process)


def test_it_records_a_release(stack):
    token = in_thread(token_for, stack.cast.alice, "deploy")
    done = cli.run(
        stack.url,
        token,
        *["release", "create", "storefront", "1.1.0", "--git-sha", "a1b2c3d", "--tests-total", "42"],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Release storefront 1.1.0 (registry.example/storefront:1.1.0): http://")
    release = Release.objects.get(version="1.1.0")
    assert (release.git_sha, release.test_summary["passed"], release.source) == ("a1b2c3d", 42, "api")


def test_it_deploys_end_to_end_through_approvals_made_with_other_peoples_tokens(stack):
    cast = stack.cast
    alice, bob, carol, dave = (
        in_thread(token_for, cast.alice, "deploy", name="alice-cli"),
        in_thread(token_for, cast.bob, "approve", name="bob-cli"),
        in_thread(token_for, cast.carol, "approve", name="carol-phone"),
        in_thread(token_for, cast.dave, "deploy", name="dave-cli"),
    )
    assert cli.run(stack.url, alice, "release", "create", "storefront", "1.1.0").returncode == 0

    to_dev = cli.run(stack.url, alice, "deploy", "storefront", "1.1.0", "--to", "dev", *WAIT)
    assert to_dev.returncode == 0, to_dev.stdout + to_dev.stderr
    assert "Deployment #" in to_dev.stdout
    assert to_dev.stdout.rstrip().endswith("succeeded.")

    to_staging = cli.start(stack.url, alice, "deploy", "storefront", "1.1.0", "--to", "staging", *WAIT)
    staging_id = deployment_id(to_staging)
    approved = cli.run(stack.url, bob, "approve", str(staging_id), "--comment", "tests are green")
    assert approved.returncode == 0, approved.stderr
    code, out = finished(to_staging)
    assert code == 0, out

    to_prod = cli.start(stack.url, dave, "deploy", "storefront", "1.1.0", "--to", "prod", *WAIT)
    prod_id = deployment_id(to_prod)
    assert cli.run(stack.url, bob, "approve", str(prod_id)).returncode == 0
    assert cli.run(stack.url, carol, "approve", str(prod_id), "--comment", "go").returncode == 0
    code, out = finished(to_prod)
    assert code == 0, out
    lines = out.splitlines()
    assert any("bob approved" in line and "API token bob-cli" in line and "(1 of 2)" in line for line in lines), out
    assert any("carol approved" in line and "API token carol-phone" in line and "“go”" in line for line in lines), out
    assert lines[-1] == f"Deployment #{prod_id} succeeded."
    prod = Deployment.objects.get(pk=prod_id)
    assert prod.state == states.SUCCEEDED
    assert prod.events.filter(data__to=states.ROLLING_OUT).exists()
    # Every event of the timeline was printed once, in order (the headline was read above).
    messages = list(prod.events.order_by("seq").values_list("message", flat=True))
    assert [line.split("  ", 1)[1] for line in lines[:-1]] == messages, out
    assert stack.kube.cluster.get("deployments", "prod", "storefront")["spec"]["template"]["spec"]["containers"][0][
        "image"
    ] == ("registry.example/storefront:1.1.0")


def test_it_exits_non_zero_when_a_crashing_release_fails(stack):
    alice = in_thread(token_for, stack.cast.alice, "deploy")
    assert cli.run(stack.url, alice, "release", "create", "storefront", "1.2.0-crash").returncode == 0
    done = cli.run(stack.url, alice, "deploy", "storefront", "1.2.0-crash", "--to", "dev", *WAIT)
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"Deployment #\d+ failed\.", done.stdout.splitlines()[-1]), done.stdout
    assert Deployment.objects.get(release__version="1.2.0-crash").state == states.FAILED


def test_it_exits_3_with_every_reason_when_a_rule_refuses(stack):
    in_thread(make_release, stack.cast.service, version="1.1.0")
    erin = in_thread(token_for, stack.cast.erin, "deploy")
    done = cli.run(stack.url, erin, "deploy", "storefront", "1.1.0", "--to", "prod")
    assert done.returncode == 3
    assert "You are not a deployer for Prod (release-managers). Ask an admin to add you." in done.stderr
    assert "has not succeeded in Staging yet: deploy it there first." in done.stderr
    assert not Deployment.objects.exists()


def test_it_exits_4_when_the_deployment_is_rejected(stack):
    release = in_thread(make_release, stack.cast.service, version="1.1.0")
    in_thread(make_deployment, release, stack.cast.dev, state=states.SUCCEEDED)
    alice = in_thread(token_for, stack.cast.alice, "deploy")
    bob = in_thread(token_for, stack.cast.bob, "approve")
    waiting = cli.start(stack.url, alice, "deploy", "storefront", "1.1.0", "--to", "staging", *WAIT)
    staging_id = deployment_id(waiting)
    assert cli.run(stack.url, bob, "reject", str(staging_id), "--comment", "wrong build").returncode == 0
    code, out = finished(waiting)
    assert code == 4
    assert out.splitlines()[-1] == f"Deployment #{staging_id} rejected. wrong build"


def test_it_exits_5_when_the_wait_times_out(stack):
    release = in_thread(make_release, stack.cast.service, version="1.1.0")
    in_thread(make_deployment, release, stack.cast.dev, state=states.SUCCEEDED)
    alice = in_thread(token_for, stack.cast.alice, "deploy")
    started = time.monotonic()
    done = cli.run(stack.url, alice, "deploy", "storefront", "1.1.0", "--to", "staging", "--wait", "--timeout", "2")
    assert done.returncode == 5
    assert "Still pending approval after the timeout." in done.stderr
    assert time.monotonic() - started < 60


def test_it_cancels_a_deployment(stack):
    release = in_thread(make_release, stack.cast.service, version="1.1.0")
    in_thread(make_deployment, release, stack.cast.dev, state=states.SUCCEEDED)
    alice = in_thread(token_for, stack.cast.alice, "deploy")
    asked = cli.run(stack.url, alice, "deploy", "storefront", "1.1.0", "--to", "staging")
    assert asked.returncode == 0
    staging_id = int(re.match(r"Deployment #(\d+)", asked.stdout).group(1))
    done = cli.run(stack.url, alice, "cancel", str(staging_id), "--reason", "not today")
    assert (done.returncode, done.stdout.strip()) == (0, f"Deployment #{staging_id} is cancelled.")


def test_it_rolls_back_with_a_reason(stack):
    cast = stack.cast
    alice = in_thread(token_for, cast.alice, "deploy")
    for version in ("1.1.0", "1.2.0"):
        assert cli.run(stack.url, alice, "release", "create", "storefront", version).returncode == 0
        assert cli.run(stack.url, alice, "deploy", "storefront", version, "--to", "dev", *WAIT).returncode == 0
    done = cli.run(stack.url, alice, "rollback", "storefront", "--env", "dev", "--reason", "5xx since 1.2.0", *WAIT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Rollback #")
    rollback = Deployment.objects.get(kind=Deployment.ROLLBACK)
    assert (rollback.release.version, rollback.state, rollback.reason) == ("1.1.0", states.SUCCEEDED, "5xx since 1.2.0")


def test_it_shows_what_runs_where_and_what_waits_for_me(stack):
    release = in_thread(make_release, stack.cast.service, version="1.1.0")
    in_thread(make_deployment, release, stack.cast.dev, state=states.SUCCEEDED)
    in_thread(make_deployment, release, stack.cast.staging, requested_by=stack.cast.alice)
    bob = in_thread(token_for, stack.cast.bob, "read")
    done = cli.run(stack.url, bob, "status")
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()[:2]
    assert header.split() == ["SERVICE", "DEV", "STAGING", "PROD"]
    assert row.split("  ")[0] == "storefront"
    assert "1.1.0" in row
    assert "(1.1.0 pending approval)" in row
    assert "Waiting for your approval:" in done.stdout


def test_it_exits_6_on_a_revoked_token(stack):
    token = in_thread(token_for, stack.cast.alice, "read", name="old")
    from releases.api.models import ApiToken

    in_thread(lambda: ApiToken.objects.get(name="old").revoke())
    done = cli.run(stack.url, token, "status")
    assert done.returncode == 6
    assert done.stderr.strip() == "pampam: API token old was revoked."


def test_it_exits_6_when_the_portal_cannot_be_reached(stack):
    done = cli.run("http://127.0.0.1:1", "pmp_x", "status")
    assert done.returncode == 6
    assert done.stderr.startswith("pampam: Cannot reach the portal at http://127.0.0.1:1")


def test_it_says_what_is_missing_without_a_url_or_token():
    done = cli.run("", "", "status")
    assert done.returncode == 2
    assert "Set PAMPAM_URL (or --url) to the portal's address." in done.stderr


# Packaging -----------------------------------------------------------------------------------------


def test_it_installs_with_pip_and_runs_as_pampam(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    source = shutil.copytree(cli.CLI_SOURCE, tmp_path / "cli")  # setuptools builds inside the source tree
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, str(source)], check=True, timeout=300, cwd=tmp_path)
    done = subprocess.run([str(venv / "bin" / "pampam"), "--version"], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "pampam, version 0.1.0")


@pytest.mark.parametrize("path", sorted(cli.CLI_SOURCE.glob("pampam_cli/*.py")), ids=lambda p: p.name)
def test_it_imports_nothing_of_the_portal(path):
    portal = {"portal", "releases", "clusters", "plumbing", "sandbox", "django", "rest_framework", "tests"}
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & portal
