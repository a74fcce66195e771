"""The demo's seed tells the README's stories truthfully: a crash release alice can deploy to Dev,
where auto-rollback is on; a past prod failure undone by an automatic rollback to the last good
release; a pending prod deployment that someone other than its requester can approve; and
gapless timelines everywhere."""

import pytest
from django.contrib.auth.models import User
from django.db.models import Max

from portal import demo_data
from releases import rules, states
from releases.models import Deployment, DeploymentEvent, Environment, Release, Service

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded():
    assert demo_data.seed(demo_data.Ports(kube=1, jenkins=2, github=3, grafana=4, slack=5), "demo-token") is True


def test_it_seeds_once(seeded):
    assert demo_data.seed(demo_data.Ports(kube=1, jenkins=2, github=3, grafana=4, slack=5), "demo-token") is False


def test_alice_can_deploy_the_crash_release_to_dev_where_auto_rollback_is_on(seeded):
    alice = User.objects.get(username="alice")
    crash = Release.objects.get(service__slug="groupbuy-api", version="1.4.0-crash")
    dev = Environment.objects.get(slug="dev")
    assert dev.auto_rollback
    verdict = rules.can_request(alice, crash, dev)
    assert verdict, verdict.reasons
    # What it would roll back to if it crashed: the release Dev runs now, which is good.
    runs_now = Deployment.objects.of_pair(crash.service, dev).filter(state=states.SUCCEEDED).latest("id")
    assert runs_now.release.version == "1.2.0"


def test_the_seeded_prod_failure_was_rolled_back_automatically_to_the_last_good_release(seeded):
    service = Service.objects.get(slug="groupbuy-api")
    prod = Environment.objects.get(slug="prod")
    failed = Deployment.objects.get(service=service, environment=prod, state=states.FAILED)
    assert failed.release.version == "1.2.0"
    rollback = Deployment.objects.get(rolls_back=failed)
    assert (rollback.kind, rollback.automatic, rollback.state) == (Deployment.ROLLBACK, True, states.SUCCEEDED)
    assert rollback.release.version == "1.1.0" == failed.last_good_before().version
    assert rollback.requested_by is None
    # The last change in prod was that rollback: no rollback of a rollback is offered.
    plan = Deployment.objects.rollback_plan(service, prod)
    assert plan.target is None
    assert "roll back a rollback" in plan.refusal


def test_the_pending_prod_deployment_waits_for_someone_other_than_its_requester(seeded):
    pending = Deployment.objects.filter(service__slug="storefront", state=states.PENDING_APPROVAL).get()
    assert pending.requested_by.username == "bob"
    assert not rules.can_decide(User.objects.get(username="bob"), pending, "approve")
    assert rules.can_decide(User.objects.get(username="carol"), pending, "approve")


def test_every_seeded_timeline_runs_one_to_n_without_gaps(seeded):
    for deployment in Deployment.objects.all():
        seqs = list(DeploymentEvent.objects.filter(deployment=deployment).order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(1, len(seqs) + 1)), deployment
        assert deployment.last_seq == len(seqs)
    assert DeploymentEvent.objects.aggregate(Max("seq"))["seq__max"] > 1
