"""`/hooks/github/`: GitHub webhooks, verified, recorded once, dispatched by event.

Checks, in order, each answering before anything is recorded: body size (413), a configured
secret (403), `X-Hub-Signature-256` over the raw body in constant time (401), the event and
delivery headers and a JSON object body, sent as `application/json` or as the `payload` field
of `application/x-www-form-urlencoded` (400/415). Then the delivery id is recorded in the same
transaction as the handler's work, so a redelivery changes nothing and a payload found bad
half-way records nothing.

Events (a dict of handlers; anything else is 202 and ignored):
- `ping`: pong.
- `push` to the default branch: its commits are recorded for each service of the repository;
  with `build_on_push` and a Jenkins build job, a build of the pushed sha starts.
- `release` published: a build of the release's tag starts (same conditions). A GitHub
  release is the explicit "ship this" act; `create` (tag) is only acknowledged, because GitHub
  sends both for a release made with a new tag and one build per release is what we want.

Size limit: MAX_BODY_BYTES (5 MiB). GitHub caps payloads at 25 MB, but push payloads rarely
pass a few hundred KB; 5 MiB bounds what one request can make us hold in memory. A larger
push is refused (413, visible in GitHub's delivery log) and costs only its recorded commits:
changelogs come from GitHub's compare API, not from these rows.
"""

import logging
import re
from datetime import UTC, datetime
from urllib.parse import parse_qs

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import IntegrityError, transaction
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from plumbing import gitrefs, weblinks
from releases import builds
from releases.models import Commit, Service, WebhookDelivery
from releases.webhooks import signatures

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 5 * 1024 * 1024
SOURCE = "github"
SHA_RE = re.compile(r"^[0-9a-f]{40}$")


class BadPayload(Exception):
    """The delivery is not what GitHub sends; the message says what is wrong."""


def answer(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"message": message, **extra}, status=status)


@csrf_exempt
@login_not_required
@require_POST
def receive(request):
    body = signatures.read_limited_body(request, MAX_BODY_BYTES)
    if body is None:
        return answer(413, f"The payload is larger than {MAX_BODY_BYTES} bytes; it was not processed.")
    if not settings.GITHUB_WEBHOOK_SECRET:
        return answer(403, "GitHub webhooks are off: set GITHUB_WEBHOOK_SECRET and the same secret on the hook.")
    signature = request.headers.get("X-Hub-Signature-256", "")
    if not signatures.verify_hmac_sha256(settings.GITHUB_WEBHOOK_SECRET, body, signature):
        return answer(401, "The X-Hub-Signature-256 header is missing or does not match the payload and secret.")
    event = request.headers.get("X-GitHub-Event", "").strip()
    delivery = request.headers.get("X-GitHub-Delivery", "").strip()
    if not event or not delivery or len(delivery) > 200 or len(event) > 60:
        return answer(400, "The X-GitHub-Event and X-GitHub-Delivery headers are required.")
    try:
        payload = parse(request.content_type, body)
        with transaction.atomic():
            if not record_delivery(delivery, event):
                return answer(200, f"Delivery {delivery} was already handled; nothing changed.", duplicate=True)
            handler = HANDLERS.get(event)
            if handler is None:
                return answer(202, f"The {event} event is not used by the portal; ignored.")
            return handler(payload)
    except BadPayload as problem:
        return answer(400, f"Bad {event or 'GitHub'} payload: {problem}")


def parse(content_type: str, body: bytes) -> dict:
    if content_type == "application/x-www-form-urlencoded":
        try:
            fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise BadPayload("the form body cannot be read.")
        if len(fields.get("payload", [])) != 1:
            raise BadPayload("a form-encoded delivery needs one `payload` field.")
        text = fields["payload"][0]
    elif content_type == "application/json":
        text = body
    else:
        raise BadPayload(f"the content type {content_type or '(none)'} is not application/json or form-encoded.")
    try:
        payload = signatures.load_json(text)
    except signatures.TooDeep as problem:
        raise BadPayload(str(problem))
    except (ValueError, UnicodeDecodeError):
        raise BadPayload("the body is not valid JSON.")
    if not isinstance(payload, dict):
        raise BadPayload("the body is not a JSON object.")
    return payload


def record_delivery(delivery: str, event: str, source: str = SOURCE) -> bool:
    """True the first time a delivery id is seen (the unique constraint settles races)."""
    try:
        with transaction.atomic():
            WebhookDelivery.objects.create(source=source, delivery_id=delivery[:200], event=event)
    except IntegrityError:
        return False
    return True


# --- reading payloads --------------------------------------------------------------------------


def field(data: dict, name: str, kind: type, where: str = ""):
    value = data.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise BadPayload(f"`{where}{name}` is missing or not a {kind.__name__}.")
    return value


def repository(payload: dict) -> tuple[str, str]:
    """(full_name, default_branch) of the payload's repository."""
    repo = field(payload, "repository", dict)
    full_name = field(repo, "full_name", str, "repository.")
    if "/" not in full_name:
        raise BadPayload("`repository.full_name` is not owner/name.")
    default_branch = repo.get("default_branch") or repo.get("master_branch") or "main"
    return full_name, str(default_branch)


def services_of(full_name: str) -> list[Service]:
    return list(Service.objects.filter(github_repo__iexact=full_name).order_by("pk"))


def unknown_repository(full_name: str) -> JsonResponse:
    return answer(202, f"No service uses the repository {full_name}; ignored.")


# Commit times the portal stores: git history starts in 1970, and nothing is dated past 2100.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def parse_time(value) -> datetime | None:
    """An ISO 8601 time (naive ones read as UTC); absent is None, nonsense or out of range is refused."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) and len(value) <= 40 else None
    except ValueError:
        moment = None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment is None or not EARLIEST <= moment < LATEST:
        raise BadPayload(f"the time {str(value)[:40]!r} is not an ISO 8601 time between 1970 and 2100.")
    return moment


def pushed_commits(payload: dict) -> list[dict]:
    """The push's commits, oldest first, plus the head commit when the list leaves it out."""
    items = payload.get("commits") or []
    if not isinstance(items, list):
        raise BadPayload("`commits` is not a list.")
    head = payload.get("head_commit")
    if isinstance(head, dict) and head.get("id") not in {c.get("id") for c in items if isinstance(c, dict)}:
        items = [*items, head]
    commits = []
    for item in items:
        if not isinstance(item, dict) or not SHA_RE.match(str(item.get("id", ""))):
            raise BadPayload("each commit needs a 40-character hex `id`.")
        author = item.get("author") if isinstance(item.get("author"), dict) else {}
        commits.append(
            {
                "sha": item["id"],
                "message": str(item.get("message") or ""),
                "author": str(author.get("name") or author.get("username") or "")[:200],
                # Shown as a link: http(s) only, and only whole (a cut URL is a wrong one).
                "url": weblinks.http_url(item.get("url")) if len(str(item.get("url") or "")) <= 200 else "",
                "committed_at": parse_time(item.get("timestamp")),
            }
        )
    return commits


# --- handlers ----------------------------------------------------------------------------------


def on_ping(payload: dict) -> JsonResponse:
    return answer(200, "pong", zen=str(payload.get("zen", "")))


def on_push(payload: dict) -> JsonResponse:
    full_name, default_branch = repository(payload)
    ref = field(payload, "ref", str)
    commits = pushed_commits(payload)
    services = services_of(full_name)
    if not services:
        return unknown_repository(full_name)
    if ref != f"refs/heads/{default_branch}":
        return answer(202, f"{ref} is not the default branch {default_branch}; ignored.")
    if payload.get("deleted"):
        return answer(202, f"{ref} was deleted; ignored.")
    after = str(payload.get("after") or "")
    now = timezone.now()
    builds_started = []
    for service in services:
        Commit.objects.bulk_create(
            [Commit(service=service, pushed_at=now, **c) for c in commits], ignore_conflicts=True
        )
        if SHA_RE.match(after):
            builds_started.append(start_build(service, after, f"push of {after[:7]} to {default_branch}"))
    return answer(
        200,
        f"Recorded {len(commits)} commit{'s' * (len(commits) != 1)} for {', '.join(s.slug for s in services)}.",
        commits=len(commits),
        builds=[b for b in builds_started if b],
    )


def on_create(payload: dict) -> JsonResponse:
    full_name, _ = repository(payload)
    ref = field(payload, "ref", str)
    ref_type = field(payload, "ref_type", str)
    if not services_of(full_name):
        return unknown_repository(full_name)
    if ref_type != "tag":
        return answer(202, f"New {ref_type} {ref}; ignored.")
    return answer(200, f"Tag {ref} noted; a build starts when a GitHub release is published for it.")


def on_release(payload: dict) -> JsonResponse:
    full_name, _ = repository(payload)
    action = field(payload, "action", str)
    release = field(payload, "release", dict)
    tag = field(release, "tag_name", str, "release.")
    if not gitrefs.is_valid_ref_name(tag):
        raise BadPayload(f"`release.tag_name` {tag[:100]!r} is not a valid git tag name.")
    services = services_of(full_name)
    if not services:
        return unknown_repository(full_name)
    if action != "published" or release.get("draft"):
        return answer(202, f"Release {tag} {action}; only published releases start builds.")
    # GitHub redelivers with the same delivery id, but a replayed or re-sent body gets a new
    # one: one build per published release, keyed by what the release is.
    release_id = release.get("id")
    key = release_id if isinstance(release_id, int) and not isinstance(release_id, bool) else tag
    if not record_delivery(f"{full_name.lower()}@{key}", "release", source="github-release"):
        return answer(200, f"Release {tag} of {full_name} was already handled; nothing changed.", duplicate=True)
    started = [start_build(s, tag, f"GitHub release {tag}") for s in services]
    return answer(200, f"Release {tag} published.", builds=[b for b in started if b])


HANDLERS = {
    "ping": on_ping,
    "push": on_push,
    "create": on_create,
    "release": on_release,
}


def start_build(service: Service, ref: str, why: str) -> str:
    """Start the service's Jenkins build of `ref` when the service asks for builds from GitHub.

    Returns what happened, for the delivery's answer (GitHub shows it under Recent Deliveries).
    """
    if not service.build_on_push or not service.jenkins_build_job:
        return ""
    build = builds.start_build(service, trigger="github", ref=ref)
    return f"{service.slug}: build #{build.pk} queued ({why})."
