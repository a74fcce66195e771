"""Signed deliveries to the portal's webhooks, as Jenkins and GitHub send them."""

import hashlib
import hmac
import json
from urllib.parse import urlencode

SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"


def sign(body: bytes, secret: str) -> str:
    """The `sha256=<hex>` HMAC both hooks check (X-Hub-Signature-256, X-Portal-Signature-256)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def jenkins_report(**overrides) -> dict:
    """A pipeline's build report to /hooks/jenkins/ (a successful build of folder/storefront #12)."""
    data = {
        "job": "folder/storefront",
        "number": 12,
        "status": "SUCCESS",
        "url": "http://jenkins.example/job/folder/job/storefront/12/",
        "queue_id": 345,
        "params": {"VERSION": "1.4.2", "GIT_COMMIT": SHA},
    }
    return {**data, **overrides}


def github_delivery(client, event, payload, secret, *, delivery="d-1", signature=None, form=False):
    """POST `payload` to /hooks/github/ as GitHub delivers `event`: JSON (or form-encoded), signed
    with `secret` unless `signature` is given (False: no signature header at all)."""
    if form:
        body, content_type = urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"
    else:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        content_type = "application/json"
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Hook-ID": "292430182",
        "User-Agent": "GitHub-Hookshot/044aadd",
    }
    if signature is not False:
        headers["X-Hub-Signature-256"] = signature or sign(body, secret)
    return client.post("/hooks/github/", data=body, content_type=content_type, headers=headers)
