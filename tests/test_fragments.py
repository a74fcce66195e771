"""Rendered fragments (plumbing.fragments): a page part is served from memory while nothing it
shows has changed, and never once a change it shows has committed.

These tests commit (transactional database), as production does: tokens are renewed after
commit. The model-based test drives random sequences of the changes a board shows (transitions,
new deployments, renames, locks, workloads) and after every step compares the dashboard, the
history and /dora/ as served with the same pages rendered from nothing.
"""

import re
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from clusters.models import FreezeWindow, Workload
from plumbing import fragments
from plumbing.models import Freshness
from releases import guards, states
from releases.models import Approval, Deployment
from tests.factories import client_for, make_cast, make_deployment, make_release, make_service

pytestmark = pytest.mark.django_db(transaction=True)

LONG_AGO = timedelta(days=3)  # "3 days ago" reads the same for the whole test


def matrix(client) -> str:
    html = client.get("/").content.decode()
    return re.search(r'<table class="matrix" id="matrix">.*?</table>', html, re.S).group(0)


def main(client, url: str) -> str:
    html = client.get(url).content.decode()
    return re.search(r"<main.*?</main>", html, re.S).group(0)


def region(client, url: str, pattern: str) -> str:
    """The part of the page `pattern` matches, with what a <time> says relative to now left out
    (its datetime stays): a lock taken "now" is "2 seconds ago" at the second read."""
    found = re.search(pattern, client.get(url).content.decode(), re.S).group(0)
    return re.sub(r"(<time [^>]*>)[^<]*(</time>)", r"\1\2", found)


def page(client, url: str) -> str:
    """A whole page's <main>, without what differs between two renders of the same state: the
    CSRF token (masked anew each time) and what a <time> says relative to now."""
    html = main(client, url)
    html = re.sub(r'(name="csrfmiddlewaretoken" value=")[^"]*', r"\1", html)
    return re.sub(r"(<time [^>]*>)[^<]*(</time>)", r"\1\2", html)


def fresh(read):
    """What `read` returns with every fragment rendered anew."""
    fragments.clear()
    return read()


def released(service):
    return make_release(service, created_at=timezone.now() - LONG_AGO)


def finished(release, environment, state=states.SUCCEEDED, **kwargs):
    at = timezone.now() - LONG_AGO
    return make_deployment(release, environment, state=state, created_at=at, finished_at=at, **kwargs)


def test_a_second_view_of_the_dashboard_is_served_from_memory(cast_tx):
    finished(make_release(cast_tx.service), cast_tx.dev)
    client = client_for(cast_tx.dave)
    fragments.clear()
    with CaptureQueriesContext(connection) as first:
        client.get("/")
    with CaptureQueriesContext(connection) as second:
        client.get("/")
    # The matrix's own reads (services with their newest deployments, deployments, releases,
    # workloads) run once; the second view reads the tokens, the columns and the guards only.
    assert len(second) < len(first) - 2
    assert not any('FROM "releases_service"' in q["sql"] for q in second.captured_queries)


def test_a_transition_shows_on_the_next_view(cast_tx):
    release = make_release(cast_tx.service, version="2.0.0")
    deployment = make_deployment(release, cast_tx.dev, state=states.APPROVED, created_at=timezone.now() - LONG_AGO)
    client = client_for(cast_tx.dave)
    assert "Approved" in matrix(client)
    deployment.transition(states.BUILDING, message="building")
    after = matrix(client)
    assert "Approved" not in after
    assert "Building" in after
    assert after == fresh(lambda: matrix(client))


def test_each_approvers_kept_list_follows_the_approvals(cast_tx):
    deployment = make_deployment(make_release(cast_tx.service), cast_tx.prod, requested_by=cast_tx.alice)
    dave, bob = client_for(cast_tx.dave), client_for(cast_tx.bob)

    def listed(client) -> str:
        return region(client, "/approvals/", r'<div id="waiting-list".*?</table>')

    assert "0 of 2" in listed(dave)
    assert "0 of 2" in listed(bob)
    Approval.objects.create(deployment=deployment, user=cast_tx.bob, decision=Approval.APPROVE)
    assert "1 of 2" in listed(dave)
    assert f'data-deployment="{deployment.pk}"' not in listed(bob)  # decided: off bob's list only
    cast_tx.approvers.user_set.remove(cast_tx.dave)  # no longer approves: nothing waits for him
    assert f'data-deployment="{deployment.pk}"' not in listed(client_for(cast_tx.dave))


def test_a_rename_in_the_admin_shows_on_the_dashboard_and_the_history(cast_tx):
    finished(make_release(cast_tx.service), cast_tx.dev)
    client = client_for(cast_tx.dave)
    matrix(client), main(client, "/history/")
    cast_tx.service.name = "Checkout <b>v2</b>"
    cast_tx.service.save()
    assert "Checkout &lt;b&gt;v2&lt;/b&gt;" in matrix(client)
    assert "Checkout &lt;b&gt;v2&lt;/b&gt;" in main(client, "/history/")


def test_a_freeze_that_starts_with_the_clock_shows_without_any_change(cast_tx):
    """Nothing is written when a scheduled freeze begins: the key holds which guards are in force."""
    client = client_for(cast_tx.dave)
    starts = timezone.now() + timedelta(seconds=1.5)
    FreezeWindow.objects.create(
        environment=cast_tx.prod, starts_at=starts, ends_at=starts + timedelta(hours=1), reason="group buy"
    )
    assert "freeze from" in matrix(client)
    deadline = time.monotonic() + 30
    while timezone.now() < starts and time.monotonic() < deadline:
        time.sleep(0.1)
    assert 'data-role="freeze"' in matrix(client)


def test_a_new_deployment_heads_the_history_and_moves_the_dora_figures(cast_tx):
    release = make_release(cast_tx.service, version="3.1.4")
    client = client_for(cast_tx.dave)
    before_history, before_dora = main(client, "/history/"), main(client, "/dora/?days=30")
    now = timezone.now()
    make_deployment(release, cast_tx.prod, state=states.SUCCEEDED, started_at=now, finished_at=now)
    history, dora = main(client, "/history/"), main(client, "/dora/?days=30")
    assert "3.1.4" in history
    assert "3.1.4" not in before_history
    assert dora != before_dora
    assert (history, dora) == fresh(lambda: (main(client, "/history/"), main(client, "/dora/?days=30")))


def test_metrics_count_a_deployment_recorded_after_a_scrape(cast_tx, settings):
    settings.METRICS_TOKEN = "t" * 32
    client = client_for(cast_tx.dave)

    def counted(text: str) -> str:
        return "".join(line for line in text.splitlines(True) if line.startswith("pampam_deployments{"))

    def scrape() -> str:
        return client.get("/metrics", HTTP_AUTHORIZATION="Bearer " + "t" * 32).content.decode()

    before = counted(scrape())
    finished(make_release(cast_tx.service), cast_tx.prod)
    after = counted(scrape())
    assert 'environment="prod",service="storefront",state="succeeded"} 1.0' in after
    assert after != before
    assert after == counted(fresh(scrape))


def test_tokens_are_made_on_first_read_and_renewed_after_commit(cast_tx):
    first = fragments.tokens(["deployment", "catalog"])
    assert set(first) == {"deployment", "catalog"}
    assert fragments.tokens(["deployment", "catalog"]) == first
    fragments.touch("deployment")  # outside a transaction: at once
    again = fragments.tokens(["deployment", "catalog"])
    assert again["deployment"] != first["deployment"]
    assert again["catalog"] == first["catalog"]


def test_the_catalog_pages_keep_follows_each_edit(cast_tx):
    release = make_release(cast_tx.service)
    client = client_for(cast_tx.bob)
    service_page, release_page = "/services/storefront/", f"/releases/{release.pk}/"
    assert "<h1>Storefront</h1>" in client.get(service_page).content.decode()
    assert "(developers)" in client.get(release_page).content.decode()  # why bob may not deploy to dev

    cast_tx.service.name = "Shopfront"
    cast_tx.service.save()
    cast_tx.developers.name = "builders"
    cast_tx.developers.save()
    cast_tx.staging.archived_at = timezone.now()
    cast_tx.staging.save()
    page = client.get(service_page).content.decode()
    assert "<h1>Shopfront</h1>" in page
    assert 'data-environment="staging"' not in page
    page = client.get(release_page).content.decode()
    assert "(builders)" in page
    assert "(developers)" not in page
    assert client.get("/services/nothing-here/").status_code == 404


def freshness_reads(queries) -> int:
    return sum('FROM "plumbing_freshness"' in q["sql"] for q in queries.captured_queries)


def test_a_page_of_several_kept_parts_reads_the_tokens_once(cast_tx):
    deployment = finished(make_release(cast_tx.service), cast_tx.dev)
    client = client_for(cast_tx.dave)
    fragments.tokens(fragments.SCOPES)  # the flush before this test took the first ones away
    for url in ("/services/storefront/", deployment.get_absolute_url()):
        with CaptureQueriesContext(connection) as page:
            assert client.get(url).status_code == 200
        assert freshness_reads(page) == 1


def test_only_a_get_or_head_keeps_the_tokens_it_read(cast_tx, rf):
    def view(request):
        first = fragments.tokens([fragments.DEPLOYMENT])
        fragments.touch(fragments.DEPLOYMENT)  # outside a transaction: at once
        return first, fragments.tokens([fragments.DEPLOYMENT, fragments.CATALOG])

    once = fragments.ReadTokensOnce(view)
    for method in ("get", "head", "post"):
        first, second = once(getattr(rf, method)("/"))
        kept = method != "post"
        assert (first["deployment"] == second["deployment"]) is kept
    assert fragments._read.get() is None  # nothing is kept past the request


def test_a_change_rolled_back_keeps_the_token(cast_tx):
    from django.db import transaction

    before = fragments.tokens(["deployment"])

    def change_then_fail():
        with transaction.atomic():
            fragments.touch("deployment")
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        change_then_fail()
    assert Freshness.objects.get(scope="deployment").token == before["deployment"]


class BoardChanges(RuleBasedStateMachine):
    """Any sequence of the changes the board shows: the pages served equal the pages rendered
    from nothing, after every step."""

    def __init__(self):
        super().__init__()
        self.cast = make_cast()
        self.services = [self.cast.service, make_service(slug="cart"), make_service(slug="search")]
        self.environments = [self.cast.dev, self.cast.staging, self.cast.prod]
        self.client = client_for(self.cast.dave)
        fragments.clear()

    def teardown(self):
        from django.core.management import call_command

        call_command("flush", interactive=False, verbosity=0)

    @initialize()
    def some_history(self):
        for service in self.services[:2]:
            finished(released(service), self.cast.dev)

    pair = st.tuples(st.integers(0, 2), st.integers(0, 2))

    @rule(pair=pair, state=st.sampled_from([states.SUCCEEDED, states.FAILED, states.CANCELLED]))
    def a_finished_deployment_is_recorded(self, pair, state):
        service, environment = self.services[pair[0]], self.environments[pair[1]]
        finished(released(service), environment, state=state)

    @rule(pair=pair)
    def a_deployment_is_requested(self, pair):
        service, environment = self.services[pair[0]], self.environments[pair[1]]
        if not Deployment.objects.of_pair(service, environment).active().exists():
            make_deployment(released(service), environment, created_at=timezone.now() - LONG_AGO)

    @rule(data=st.data())
    def an_active_deployment_moves(self, data):
        active = list(Deployment.objects.active().order_by("pk"))
        if not active:
            return
        deployment = data.draw(st.sampled_from(active))
        onward = sorted(states.TRANSITIONS.get(deployment.state, ()))
        new = data.draw(st.sampled_from(onward))
        deployment.transition(new, message=f"to {new}")

    @rule(data=st.data(), who=st.sampled_from(["bob", "dave"]))
    def someone_approves_a_waiting_deployment(self, data, who):
        waiting = list(Deployment.objects.filter(state=states.PENDING_APPROVAL).exclude(approvals__user__username=who))
        if waiting:
            deployment = data.draw(st.sampled_from(sorted(waiting, key=lambda d: d.pk)))
            Approval.objects.create(deployment=deployment, user=getattr(self.cast, who), decision=Approval.APPROVE)

    @rule(index=st.integers(0, 2), name=st.sampled_from(["Checkout", "Cart & co", "<i>Search</i>"]))
    def a_service_is_renamed(self, index, name):
        service = self.services[index]
        service.name = name
        service.save()

    @rule(pair=pair)
    def a_service_is_locked_or_unlocked(self, pair):
        service, environment = self.services[pair[0]], self.environments[pair[1]]
        held = guards.in_force([environment])[environment.pk].locks_for(service.slug)
        if held:
            guards.unlock(self.cast.admin, held[0])
        else:
            guards.lock(self.cast.admin, environment, reason="hold on", service=service)

    @rule(pair=pair, image=st.sampled_from(["registry.example/x:2", "registry.example/x:3"]))
    def the_cluster_runs_an_image(self, pair, image):
        service, environment = self.services[pair[0]], self.environments[pair[1]]
        Workload.objects.update_or_create(
            environment=environment,
            name=service.k8s_deployment,
            defaults={"image": image, "expected_image": "registry.example/x:1"},
        )

    @invariant()
    def pages_served_equal_pages_rendered_anew(self):
        newest = Deployment.objects.order_by("-pk").first()
        reads = (
            lambda: matrix(self.client),
            lambda: main(self.client, "/history/"),
            lambda: main(self.client, "/dora/?days=7&environment=prod"),
            lambda: page(self.client, "/services/cart/"),
            lambda: region(self.client, "/approvals/", r'<div id="waiting-list".*?</table>'),
        )
        if newest is not None:
            # Its timeline, approvals, actions and rollback offer; its release's deploy verdicts.
            reads += (
                lambda: page(self.client, f"/deployments/{newest.pk}/"),
                lambda: page(self.client, f"/releases/{newest.release_id}/"),
            )
        served = [read() for read in reads]
        fragments.clear()
        assert served == [read() for read in reads]


@pytest.mark.timeout(1800)  # 90 s on an idle machine; over 300 s with two CPU burners beside the suite
@pytest.mark.usefixtures("transactional_db")
def test_any_sequence_of_changes_leaves_no_page_stale():
    # Eight pages read twice after every step: shorter sequences than the profile's default.
    run_state_machine_as_test(BoardChanges, settings=settings(max_examples=15, stateful_step_count=12))
