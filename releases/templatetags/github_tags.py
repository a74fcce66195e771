"""GitHub widgets: changelogs on release and deployment pages, commits not yet in production,
and the report-back status on a deployment (see releases.changelog and releases.reporting)."""

from django import template

from releases import changelog, reporting

register = template.Library()


@register.inclusion_tag("includes/github_changelog_release.html")
def github_release_changelog(release):
    """Per environment: what runs there and what this release brings (next environment first open)."""
    return {"release": release, "targets": changelog.for_release(release)}


@register.inclusion_tag("includes/github_changelog_deployment.html")
def github_deployment_changelog(deployment):
    """The commits between the deployment's previous release and its release."""
    return {"deployment": deployment, "changelog": changelog.for_deployment(deployment)}


@register.inclusion_tag("includes/github_commits_pending.html")
def github_commits_pending(service):
    """ "N commits not yet in prod" on the service page."""
    return {"service": service, "pending": changelog.not_in_production(service)}


@register.inclusion_tag("includes/github_report.html")
def github_report(deployment):
    """ "GitHub: reported success" or "GitHub: could not report: …" (nothing when not reported)."""
    return {"report": reporting.summary(deployment)}


@register.filter
def release_versions(versions: dict, sha: str) -> str:
    return ", ".join(versions.get(sha, []))
