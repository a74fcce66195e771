"""tests/support/tools.py: under CI=true a test whose outside tool is missing fails, never skips."""

import pytest

from tests.support import tools


def test_it_fails_a_test_whose_tool_is_missing_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no-such-tool is not installed: apt-get install no-such-tool"):
        tools.require_tool("no-such-tool")


def test_it_skips_a_test_whose_tool_is_missing_elsewhere(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        tools.require_tool("no-such-tool")


def test_it_fails_under_ci_when_kubectl_is_too_old(monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(tools, "find_tool", lambda name: "/usr/bin/kubectl")
    monkeypatch.setattr(tools, "kubectl_version", lambda path: (1, 20))  # Debian bookworm's
    assert tools.require_kubectl((1, 20)) == "/usr/bin/kubectl"
    with pytest.raises(pytest.fail.Exception, match="needs kubectl 1.28\\+, /usr/bin/kubectl is 1.20"):
        tools.require_kubectl((1, 28))


def test_it_names_debians_packages_for_the_tools_tests_use():
    assert {name: package for name, (_, package) in tools.TOOLS.items()} == {
        "kubectl": "kubernetes-client",
        "chromium": "chromium",
        "prometheus": "prometheus",
        "promtool": "prometheus",
        "redis-server": "redis-server",
    }
