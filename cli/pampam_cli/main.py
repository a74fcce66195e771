"""`pampam`: releases, deployments, approvals and rollbacks of the Pampam release portal.

Configuration: PAMPAM_URL (the portal) and PAMPAM_TOKEN (an API token), or --url/--token.
The exit code says how it ended: see EXIT below.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from urllib.parse import quote

import click

from pampam_cli import __version__
from pampam_cli.client import ApiError, Client, backoff, sleep

# Exit codes.
OK = 0  # done; a deployment waited for succeeded
FAILED = 1  # the deployment failed
USAGE = 2  # bad usage (click's own code)
REFUSED = 3  # a rule said no (403 or 409): the reasons are printed
STOPPED = 4  # rejected or cancelled
TIMED_OUT = 5  # still under way when --timeout ran out
ERROR = 6  # anything else: bad or missing token, unknown object, bad input, portal unreachable

OUTCOMES = {"succeeded": OK, "failed": FAILED, "rejected": STOPPED, "cancelled": STOPPED}
LONG_POLL = 30  # seconds per wait request; the portal answers sooner when something happens


class Ended(Exception):
    def __init__(self, code: int):
        self.code = code


def say(message: str = "", *, err: bool = False) -> None:
    click.echo(message, err=err)


def fail(error: ApiError) -> Ended:
    """Print what the portal said and pick the exit code."""
    say(f"pampam: {error.detail}", err=True)
    for reason in error.reasons:
        if reason != error.detail:
            say(f"  - {reason}", err=True)
    return Ended(REFUSED if error.refused else ERROR)


class Context:
    def __init__(self, url: str, token: str, as_json: bool):
        self.url, self.token, self.as_json = url, token, as_json

    @property
    def api(self) -> Client:
        if not self.url:
            raise click.UsageError("Set PAMPAM_URL (or --url) to the portal's address.")
        if not self.token:
            raise click.UsageError("Set PAMPAM_TOKEN (or --token) to an API token (the portal's API tokens page).")
        return Client(self.url, self.token)

    def show(self, data, text: str) -> None:
        say(json.dumps(data, indent=2, sort_keys=True) if self.as_json else text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="PAMPAM_URL", default="", help="The portal, e.g. https://releases.example (PAMPAM_URL).")
@click.option("--token", envvar="PAMPAM_TOKEN", default="", help="An API token (PAMPAM_TOKEN).")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead of text.")
@click.version_option(__version__, prog_name="pampam")
@click.pass_context
def cli(ctx, url, token, as_json):
    """Releases, deployments, approvals and rollbacks of the Pampam release portal.

    \b
    Exit codes: 0 done (a deployment waited for succeeded), 1 failed,
    2 bad usage, 3 refused by a rule, 4 rejected or cancelled,
    5 timed out waiting, 6 any other error.
    """
    ctx.obj = Context(url, token, as_json)


# --- releases ---------------------------------------------------------------------------------


@cli.group()
def release():
    """Releases: what CI built."""


@release.command("create")
@click.argument("service")
@click.argument("version")
@click.option("--image", help="Image reference (default: the service's image repository:VERSION).")
@click.option("--git-sha", default="", help="The commit it was built from.")
@click.option("--build-url", default="", help="The CI build that made it.")
@click.option("--tests-total", type=click.IntRange(min=0), help="Test summary: how many ran…")
@click.option("--tests-failed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--tests-skipped", type=click.IntRange(min=0), default=0, show_default=True)
@click.pass_obj
def release_create(obj, service, version, image, git_sha, build_url, tests_total, tests_failed, tests_skipped):
    """Record release VERSION of SERVICE (immutable; sending the same artifact again is harmless)."""
    given = {"image": image, "git_sha": git_sha, "build_url": build_url}
    body = {"service": service, "version": version, **{k: v for k, v in given.items() if v}}
    if tests_total is not None:
        body["test_summary"] = {"total": tests_total, "failed": tests_failed, "skipped": tests_skipped}
    made = run(lambda: obj.api.post("/api/v1/releases/", body)).data
    obj.show(made, f"Release {made['service']} {made['version']} ({made['image']}): {made['web_url']}")


# --- deployments ------------------------------------------------------------------------------


@cli.command()
@click.argument("service")
@click.argument("version")
@click.option("--to", "environment", required=True, help="The environment (slug), e.g. staging.")
@click.option("--wait", is_flag=True, help="Wait for the outcome, printing the timeline; the exit code says it.")
@click.option("--timeout", type=click.IntRange(min=1), default=3600, show_default=True, help="Seconds to wait.")
@click.option("--override-reason", default="", help="Admins: pass a freeze or a lock, saying why.")
@click.pass_obj
def deploy(obj, service, version, environment, wait, timeout, override_reason):
    """Ask to deploy VERSION of SERVICE to an environment (and wait for the outcome with --wait)."""
    api = obj.api
    body = {"service": service, "version": version, "environment": environment, "override_reason": override_reason}
    deployment = run(lambda: api.post("/api/v1/deployments/", body)).data
    finish(obj, api, deployment, wait, timeout)


@cli.command("wait")
@click.argument("deployment_id", type=int)
@click.option("--timeout", type=click.IntRange(min=1), default=3600, show_default=True, help="Seconds to wait.")
@click.pass_obj
def wait_command(obj, deployment_id, timeout):
    """Wait for a deployment to end, printing its timeline; the exit code says how it ended."""
    api = obj.api
    deployment = run(lambda: api.get(f"/api/v1/deployments/{deployment_id}/")).data
    finish(obj, api, deployment, True, timeout)


@cli.command()
@click.argument("deployment_id", type=int)
@click.option("--comment", default="", help="Shown in the timeline.")
@click.pass_obj
def approve(obj, deployment_id, comment):
    """Approve a deployment (needs a token with the approve scope)."""
    decide(obj, deployment_id, "approve", comment)


@cli.command()
@click.argument("deployment_id", type=int)
@click.option("--comment", required=True, help="Why, so the requester can fix it.")
@click.pass_obj
def reject(obj, deployment_id, comment):
    """Reject a deployment, saying why."""
    decide(obj, deployment_id, "reject", comment)


@cli.command()
@click.argument("deployment_id", type=int)
@click.option("--reason", default="")
@click.pass_obj
def cancel(obj, deployment_id, reason):
    """Cancel a deployment (the requester or a deployer of its environment)."""
    done = run(lambda: obj.api.post(f"/api/v1/deployments/{deployment_id}/cancel/", {"reason": reason})).data
    obj.show(done, f"Deployment #{done['id']} is {done['state_label'].lower()}.")


@cli.command()
@click.argument("service")
@click.option("--env", "environment", required=True, help="The environment (slug).")
@click.option("--reason", required=True, help="Why: recorded in the timeline (required in production).")
@click.option("--wait", is_flag=True, help="Wait for the outcome, printing the timeline.")
@click.option("--timeout", type=click.IntRange(min=1), default=3600, show_default=True)
@click.option("--override-reason", default="", help="Admins: pass a lock, saying why.")
@click.pass_obj
def rollback(obj, service, environment, reason, wait, timeout, override_reason):
    """Roll SERVICE back to its last good release in an environment."""
    api = obj.api
    body = {"environment": environment, "reason": reason, "override_reason": override_reason}
    deployment = run(lambda: api.post(f"/api/v1/services/{quote(service, safe='')}/rollback/", body)).data
    finish(obj, api, deployment, wait, timeout)


def decide(obj, deployment_id: int, decision: str, comment: str) -> None:
    path = f"/api/v1/deployments/{deployment_id}/{decision}/"
    done = run(lambda: obj.api.post(path, {"comment": comment})).data
    counted = f" ({done['approvals_count']} of {done['required_approvals']})" if decision == "approve" else ""
    obj.show(done, f"Deployment #{done['id']}: {decision}d{counted}; now {done['state_label'].lower()}.")


# --- status -----------------------------------------------------------------------------------


@cli.command()
@click.argument("service", required=False)
@click.pass_obj
def status(obj, service):
    """What runs where (services × environments), and what waits for your approval."""
    api = obj.api
    environments = run(lambda: api.get("/api/v1/environments/")).data
    waiting = run(lambda: api.get("/api/v1/approvals/")).data
    if obj.as_json:
        obj.show({"environments": environments, "waiting_for_me": waiting}, "")
        return
    say(matrix(environments, service))
    if waiting:
        say("\nWaiting for your approval:")
        for d in waiting:
            say(f"  #{d['id']} {d['service']} {d['release']['version']} → {d['environment']}  {d['web_url']}")


@cli.command()
@click.pass_obj
def whoami(obj):
    """Who the token acts as, and its scopes."""
    me = run(lambda: obj.api.get("/api/v1/me/")).data
    token = me.get("token") or {}
    obj.show(
        me,
        f"{me['username']} ({', '.join(me['groups']) or 'no groups'}); token {token.get('name')}: "
        f"{', '.join(token.get('scopes', []))}",
    )


def matrix(environments: list, only: str | None) -> str:
    services = sorted({cell["service"] for env in environments for cell in env["services"]})
    if only:
        services = [s for s in services if s == only]
    rows = [["SERVICE", *[env["slug"].upper() + (" (frozen)" if env["frozen"] else "") for env in environments]]]
    for slug in services:
        row = [slug]
        for env in environments:
            cell = next((c for c in env["services"] if c["service"] == slug), None)
            row.append(describe(cell, env))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def describe(cell: dict | None, env: dict) -> str:
    if not cell:
        return "—"
    text = cell["version"] or "—"
    latest = cell.get("latest")
    if latest and (not cell.get("running") or latest["id"] != cell["running"]["id"]):
        text += f" ({latest['version']} {latest['state_label'].lower()})"
    if cell.get("drifted"):
        text += " DRIFT"
    if any(lock["service"] in ("", cell["service"]) for lock in env["locks"]):
        text += " [locked]"
    return text


# --- following a deployment ---------------------------------------------------------------------


def finish(obj, api: Client, deployment: dict, wait: bool, timeout: int) -> None:
    """Say what was asked; with `wait`, follow the timeline and end with the outcome's exit code."""
    say(headline(deployment))
    shown = print_events(deployment["timeline"], 0)
    if not wait:
        if obj.as_json:
            obj.show(deployment, "")
        return
    final = follow(api, deployment, shown, time.monotonic() + timeout)
    if obj.as_json:
        obj.show(final, "")
    raise Ended(outcome(final))


def headline(d: dict) -> str:
    what = "Rollback" if d["kind"] == "rollback" else "Deployment"
    approvals = ""
    if d["state"] == "pending_approval":
        approvals = f" ({d['approvals_count']} of {d['required_approvals']} approvals)"
    return (
        f"{what} #{d['id']}: {d['service']} {d['release']['version']} → {d['environment']}, "
        f"{d['state_label'].lower()}{approvals}. {d['web_url']}"
    )


def follow(api: Client, deployment: dict, after: int, deadline: float) -> dict:
    """Long-poll the deployment until it is final or the deadline passes, printing new events."""
    path = f"/api/v1/deployments/{deployment['id']}/"
    failures = 0
    while True:
        left = deadline - time.monotonic()
        if deployment["is_final"] and deployment["timeline_complete"]:
            return deployment
        if left <= 0:
            say(f"Still {deployment['state_label'].lower()} after the timeout.", err=True)
            raise Ended(TIMED_OUT)
        wait = 0 if not deployment["timeline_complete"] else max(1, min(LONG_POLL, int(left)))
        try:
            answer = api.get(path, {"after_seq": after, "wait": wait}, timeout=wait + 30)
        except ApiError as error:
            if not error.transient:
                raise fail(error) from None
            failures += 1
            say(f"pampam: {error.detail} (trying again)", err=True)
            sleep(min(backoff(failures), max(0.0, deadline - time.monotonic())))
            continue
        failures = 0
        deployment = answer.data
        after = print_events(deployment["timeline"], after)
        if answer.retry_after:
            sleep(answer.retry_after)


def print_events(events: list, after: int) -> int:
    for event in events:
        if event["seq"] <= after:
            continue
        stamp = _clock(event["at"])
        say(f"{stamp}  {event['message']}")
        after = event["seq"]
    return after


def _clock(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return iso


def outcome(d: dict) -> int:
    code = OUTCOMES.get(d["state"], ERROR)
    ending = d["reason"] if d.get("reason") and code != OK else ""
    say(
        f"{'Rollback' if d['kind'] == 'rollback' else 'Deployment'} #{d['id']} {d['state_label'].lower()}."
        + (f" {ending}" if ending else "")
    )
    return code


# --- running ----------------------------------------------------------------------------------


def run(call):
    """One API call; a refusal or an error ends the command with its exit code."""
    try:
        return call()
    except ApiError as error:
        raise fail(error) from None


def main(argv: list[str] | None = None) -> None:
    try:
        code = cli.main(args=argv, prog_name="pampam", standalone_mode=False)
    except Ended as ended:
        sys.exit(ended.code)
    except click.exceptions.Abort:
        say("Aborted.", err=True)
        sys.exit(ERROR)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    sys.exit(code if isinstance(code, int) else OK)


if __name__ == "__main__":
    main()
