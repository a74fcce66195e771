"""A real OpenID Connect provider process (oidc-provider-mock, from PyPI) for the SSO tests.

It speaks the protocol for real: discovery, an authorization form, the token endpoint signing
RS256 ID tokens with its own key, JWKS, userinfo, nonce, end_session. Tests choose a person's
claims (e-mail, name, groups) before each login through its `PUT /users/<sub>` API; claims named
like the token's own (`aud`, `exp`, `iss`) replace them in the ID token, which is how the
refusal tests get a signed token for the wrong audience or one already expired.
It does not check PKCE (the portal sends an S256 challenge and its verifier all the same).
"""

import subprocess
import sys
import time
from dataclasses import dataclass
from urllib.parse import quote

import requests

from tests.support import free_port, stop_process

DEADLINE_SECONDS = 60


@dataclass
class Provider:
    url: str
    process: subprocess.Popen

    def set_user(self, sub: str, **claims) -> None:
        response = requests.put(f"{self.url}/users/{quote(sub, safe='')}", json=claims, timeout=10)
        assert response.status_code == 204, response.text

    def stop(self) -> None:
        stop_process(self.process, timeout=10)


def start_provider() -> Provider:
    """Start the provider on a free loopback port and wait until its discovery document answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port), "--require-nonce"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    provider = Provider(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"The OIDC provider exited with {process.returncode}")
        try:
            if requests.get(f"{provider.url}/.well-known/openid-configuration", timeout=2).ok:
                return provider
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            provider.stop()
            raise RuntimeError("The OIDC provider did not start in time")
        time.sleep(0.1)
