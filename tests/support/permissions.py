"""What the permission tests of the pages (tests/test_permissions.py) and of the API
(tests/api/test_permissions.py) share: the reasons the rules give for refusing an action on a
staging deployment, and what each action leaves behind, done or refused."""

from releases import states
from releases.models import Deployment

NOT_A_DEPLOYER = "You are not a deployer for Staging (developers). Ask an admin to add you."
NOT_AN_APPROVER = "You are not an approver for Staging (approvers)."
MAY_NOT_CANCEL = "Only the requester or a deployer for Staging can cancel."
SELF_APPROVAL = "You requested this deployment; Staging needs someone else to approve it."


def assert_requested(cast, who, done):
    """One deployment in staging, requested by `who`, if the request was done; else none."""
    created = Deployment.objects.filter(environment=cast.staging)
    if done:
        assert created.get().requested_by == getattr(cast, who)
    else:
        assert not created.exists()


def assert_approved(deployment, done):
    """The deployment approved if the approval was done; else still pending, with no approval."""
    deployment.refresh_from_db()
    if done:
        assert deployment.state == states.APPROVED
    else:
        assert deployment.state == states.PENDING_APPROVAL
        assert not deployment.approvals.exists()


def assert_cancelled(deployment, done):
    """The deployment cancelled if the cancel was done; else still pending."""
    deployment.refresh_from_db()
    assert deployment.state == (states.CANCELLED if done else states.PENDING_APPROVAL)
