"""Reading settings from the environment, failing loudly on a bad value.

django-environ parses URLs and lists; these helpers add what it lacks: strict booleans
and integers (environ quietly reads "ture" as False) and secrets from `NAME_FILE`.
Every error names the variable so a broken deploy says what to fix.
"""

import ipaddress
import os
import re
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bad(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"Environment variable {name}={value!r} is not valid: {expected}.")


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise _bad(name, value, "expected one of 1/0, true/false, yes/no, on/off")


def envint(name: str, default: int, minimum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, value, "expected a whole number") from None
    if minimum is not None and number < minimum:
        raise _bad(name, value, f"expected a number of at least {minimum}")
    return number


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envurl(name: str, default: str = "") -> str:
    """An http(s) URL without a trailing slash, or empty when the system is not configured."""
    value = os.environ.get(name, default).strip()
    if value and not value.startswith(("http://", "https://")):
        raise _bad(name, value, "expected a URL starting with http:// or https://")
    return value.rstrip("/")


def secret(name: str, default: str = "") -> str:
    """A secret from `NAME`, or from the file named by `NAME_FILE` (Docker/Kubernetes secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(
                f"Environment variable {name}_FILE={path!r} cannot be read: {exc.strerror}."
            ) from None
    return os.environ.get(name, default)


def redact(url: str) -> str:
    """The URL with its password replaced, fit for an error message or a log line."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


_ENGINES = ("django.db.backends.postgresql", "django.db.backends.sqlite3")


def database(name: str, default: str) -> dict:
    """A database URL (it holds a password, so it may also come from `NAME_FILE`)."""
    value = secret(name) or default
    try:
        config = environ.Env.db_url_config(value)
    except (ValueError, KeyError, TypeError, AttributeError, ImproperlyConfigured) as exc:  # environ's several
        raise _bad(name, redact(value), f"expected a database URL ({exc})") from None
    if config.get("ENGINE") not in _ENGINES:
        raise _bad(name, redact(value), "expected postgres://… or sqlite:///…")
    if not config.get("NAME"):
        raise _bad(name, redact(value), "the URL names no database")
    return config


def redis_url(name: str, default: str) -> str:
    value = secret(name) or default
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise _bad(name, redact(value), "expected redis://host:port/db")
    return value


def csv(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def networks(name: str, default: str = "") -> list:
    """Comma-separated IP addresses or CIDR networks (`10.0.0.0/8,127.0.0.1`)."""
    result = []
    for item in csv(name, default):
        try:
            result.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise _bad(name, os.environ.get(name, default), f"{item!r} is not an IP address or network") from None
    return result


def header_name(name: str, default: str = "") -> str:
    """An HTTP header name such as `X-Forwarded-Proto`, as Django's META key (`HTTP_X_FORWARDED_PROTO`)."""
    value = os.environ.get(name, default).strip()
    if not value:
        return ""
    if not re.fullmatch(r"[A-Za-z0-9-]{1,100}", value):
        raise _bad(name, value, "expected an HTTP header name such as X-Forwarded-Proto")
    return "HTTP_" + value.upper().replace("-", "_")


def pairs(name: str, default: str = "") -> list[tuple[str, str]]:
    """`a=b,c=d` as [("a", "b"), ("c", "d")]; a name may repeat on either side."""
    result = []
    for item in csv(name, default):
        left, sep, right = item.partition("=")
        if not sep or not left.strip() or not right.strip():
            raise _bad(name, os.environ.get(name, default), f"{item!r} is not name=name")
        result.append((left.strip(), right.strip()))
    return result
