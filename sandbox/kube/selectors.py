"""Label and field selectors, parsed into predicates.

Label selectors follow `k8s.io/apimachinery/pkg/labels`: comma-separated requirements, each
`k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` (exists) or `!k` (does not exist).
Field selectors support `path=value`, `path==value` and `path!=value` on any dotted path
(`metadata.name`, `involvedObject.uid`, `status.phase`, ...).
"""

import re

from .errors import bad_request

_SET_RE = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_requirements(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _label_requirement(text: str):
    match = _SET_RE.match(text)
    if match:
        key, op, values = match.group(1), match.group(2), match.group(3)
        allowed = {v.strip() for v in values.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in allowed
        return lambda labels: labels.get(key) not in allowed
    for op in ("!=", "==", "="):
        if op in text:
            key, value = (s.strip() for s in text.split(op, 1))
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    if text.startswith("!"):
        key = text[1:].strip()
        return lambda labels: key not in labels
    if re.fullmatch(r"[\w./-]+", text):
        return lambda labels: text in labels
    raise bad_request(f"unable to parse requirement: {text!r}")


def parse_label_selector(text: str):
    """`labelSelector` query string → predicate on a labels dict."""
    requirements = [_label_requirement(part) for part in _split_requirements(text)]
    return lambda labels: all(req(labels) for req in requirements)


def selector_from_spec(selector: dict | None):
    """A LabelSelector object (matchLabels / matchExpressions) → predicate on a labels dict."""
    selector = selector or {}
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []

    def check(labels: dict) -> bool:
        if any(labels.get(k) != v for k, v in match_labels.items()):
            return False
        for expr in expressions:
            key, op, values = expr["key"], expr["operator"], expr.get("values") or []
            present = key in labels
            if op == "In" and labels.get(key) not in values:
                return False
            if op == "NotIn" and present and labels[key] in values:
                return False
            if op == "Exists" and not present:
                return False
            if op == "DoesNotExist" and present:
                return False
        return True

    return check


def selector_string(selector: dict | None) -> str:
    """LabelSelector → the `k=v,k2 in (a,b)` text kubectl and Table printers show."""
    selector = selector or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key = expr["operator"], expr["key"]
        values = ",".join(sorted(expr.get("values") or []))
        parts.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": key,
                "DoesNotExist": f"!{key}",
            }[op]
        )
    return ",".join(parts)


def _field(obj: dict, path: str) -> str:
    value = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def parse_field_selector(text: str):
    """`fieldSelector` query string → predicate on a whole object."""
    checks = []
    for part in _split_requirements(text):
        for op in ("!=", "==", "="):
            if op in part:
                path, value = (s.strip() for s in part.split(op, 1))
                checks.append((path, value, op != "!="))
                break
        else:
            raise bad_request(f"invalid field selector: {part!r}")
    return lambda obj: all((_field(obj, p) == v) == eq for p, v, eq in checks)
