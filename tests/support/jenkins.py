"""The Jenkins sandbox for tests, with the portal's settings pointed at it."""

from contextlib import contextmanager

from sandbox.jenkins import start


@contextmanager
def jenkins_for(settings, seed, *, poll_seconds=0.05, queue_seconds=0.05, build_seconds=0.3):
    """A sandbox Jenkins seeded with `seed` (user jenkins, token jenkins-token), stopped on exit."""
    handle = start(
        user="jenkins", token="jenkins-token", seed=seed, queue_seconds=queue_seconds, build_seconds=build_seconds
    )
    settings.JENKINS_URL, settings.JENKINS_USER, settings.JENKINS_TOKEN = handle.url, handle.user, handle.token
    settings.JENKINS_POLL_SECONDS = poll_seconds  # scheduled, then brought forward by run_jobs
    try:
        yield handle
    finally:
        handle.stop()


def builds_storefront(service):
    """`service` built by the sandbox's storefront-build job."""
    service.jenkins_build_job = "storefront-build"
    service.save()
    return service
