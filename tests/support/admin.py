"""What the Django admin's forms post, for tests that change objects through the admin."""


def environment_form(environment, **changes):
    """The environment change form as the admin would post it unchanged, with `changes` applied
    (an empty value leaves the field out, as an empty browser field does)."""
    data = {
        "slug": environment.slug,
        "name": environment.name,
        "position": environment.position,
        "cluster": environment.cluster_id,
        "namespace": environment.namespace,
        "required_approvals": environment.required_approvals,
        "approver_group": environment.approver_group_id or "",
        "deployer_group": environment.deployer_group_id or "",
        "requires_previous": "on" if environment.requires_previous else "",
        "deploy_via": environment.deploy_via,
        "jenkins_deploy_job": environment.jenkins_deploy_job,
        "progress_deadline_seconds": environment.progress_deadline_seconds,
        "cancel_action": environment.cancel_action,
        "grafana_variables": "{}",
        "slack_webhook_url": "",
        "freeze_windows-TOTAL_FORMS": "0",
        "freeze_windows-INITIAL_FORMS": "0",
        "freeze_windows-MIN_NUM_FORMS": "0",
        "freeze_windows-MAX_NUM_FORMS": "1000",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}
