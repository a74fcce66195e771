"""Shared pieces of webhook authentication: HMAC-SHA256 signatures and bounded bodies.

GitHub signs with `X-Hub-Signature-256: sha256=<hex>`, pipeline steps calling
`/hooks/jenkins/` with `X-Portal-Signature-256: sha256=<hex>`; both are an HMAC-SHA256 of
the raw body keyed with a shared secret, compared in constant time.
"""

import hashlib
import hmac
import json
import re


def verify_hmac_sha256(secret: str, body: bytes, header_value: str, prefix: str = "sha256=") -> bool:
    """True when `header_value` is `prefix` + the hex HMAC-SHA256 of `body` under `secret`.

    An empty secret never verifies: a hook without a configured secret accepts nothing.
    # Reference: https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
    """
    if not secret or not header_value or not header_value.startswith(prefix):
        return False
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    given = header_value[len(prefix) :].strip().lower()
    return hmac.compare_digest(expected.encode("ascii"), given.encode("ascii", "replace"))


def read_limited_body(request, limit: int) -> bytes | None:
    """The raw request body, or None when it is larger than `limit` bytes.

    The declared Content-Length is checked first so an oversized upload is refused without
    reading it; the stream is then read at most `limit + 1` bytes in case the header lied.
    """
    declared = request.META.get("CONTENT_LENGTH") or "0"
    try:
        if int(declared) > limit:
            return None
    except ValueError:
        return None
    body = request.read(limit + 1)
    if len(body) > limit:
        return None
    return body


MAX_JSON_DEPTH = 32


class TooDeep(ValueError):
    pass


def load_json(text: bytes | str, max_depth: int = MAX_JSON_DEPTH):
    """`json.loads`, refusing documents nested deeper than `max_depth` (arrays and objects).

    Very deep nesting makes the parser itself overflow the stack (RecursionError, a 500 if
    let through); moderate nesting is still more than any hook needs, and is refused too.
    Raises ValueError (TooDeep for nesting) with a message for the sender.
    """
    if _nesting(text) > max_depth:
        # Refused before parsing: a RecursionError inside the parser would be caught, but on
        # CPython 3.11 it leaves the interpreter's depth count wrong for later ast.parse calls.
        raise TooDeep(f"the JSON is nested more than {max_depth} levels deep.")
    try:
        document = json.loads(text)
    except RecursionError:
        raise TooDeep(f"the JSON is nested more than {max_depth} levels deep.") from None
    if _depth(document) > max_depth:
        raise TooDeep(f"the JSON is nested more than {max_depth} levels deep.")
    return document


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = re.compile(r"[\[\]{}]")


def _nesting(text: bytes | str) -> int:
    """How deep arrays and objects nest in the raw text (strings skipped), without parsing it."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _depth(document) -> int:
    deepest, stack = 0, [(document, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest
