"""Outside programs the tests drive (kubectl, Chromium, Prometheus, promtool), found in one way.

`require_tool("kubectl")` returns the program's path. When it is missing the test is skipped on
a developer's machine, but under `CI=true` it fails, naming the package to install, so tests that
need a real tool cannot silently vanish from a CI run (`.ci/run` installs them all).
`require_kubectl(minimum)` also checks kubectl's version (Debian's `kubernetes-client` is 1.20,
which lacks newer subcommands such as `auth whoami` and `events`).
"""

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

# tool → (where to look if not on PATH, the Debian package that provides it)
TOOLS = {
    "kubectl": (None, "kubernetes-client"),
    "chromium": ("/usr/bin/chromium", "chromium"),
    "prometheus": ("/usr/bin/prometheus", "prometheus"),
    "promtool": (None, "prometheus"),
    "redis-server": ("/usr/bin/redis-server", "redis-server"),
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """Fail under CI, skip elsewhere."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a test needing it must not be skipped)", pytrace=False)
    pytest.skip(reason)


def find_tool(name: str) -> str | None:
    fixed, _ = TOOLS.get(name, (None, name))
    if fixed:
        return fixed if Path(fixed).exists() else None
    return shutil.which(name)


def require_tool(name: str) -> str:
    """The path of `name`, or fail (CI) / skip (elsewhere) with how to install it."""
    path = find_tool(name)
    if path is None:
        package = TOOLS.get(name, (None, name))[1]
        missing(f"{name} is not installed: apt-get install {package} (.ci/run does)")
    return path


@cache
def kubectl_version(path: str) -> tuple[int, int]:
    """(major, minor) of a kubectl client, e.g. (1, 32); the gcloud dispatcher reports its own."""
    answer = subprocess.run([path, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=30)
    info = json.loads(answer.stdout or "{}").get("clientVersion", {})
    minor = "".join(c for c in info.get("minor", "0") if c.isdigit()) or "0"
    return int(info.get("major", "1") or 1), int(minor)


def require_kubectl(minimum: tuple[int, int] = (1, 20)) -> str:
    path = require_tool("kubectl")
    version = kubectl_version(path)
    if version < minimum:
        missing(f"this test needs kubectl {minimum[0]}.{minimum[1]}+, {path} is {version[0]}.{version[1]}")
    return path
