"""On a 390 px wide phone: no header overlap, nothing wider than the screen."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from releases import states
from releases.models import Build
from tests.browser.conftest import DOCS, SCREENSHOTS, in_thread
from tests.factories import make_deployment, make_release, succeed_in

pytestmark = pytest.mark.browser

# Boxes of the header's parts, and how wide the page really is.
LAYOUT = """() => {
  const box = sel => {
    const r = document.querySelector(sel).getBoundingClientRect();
    return [r.left, r.top, r.right, r.bottom];
  };
  return {logo: box('header .logo'), nav: box('header nav'), who: box('header .who'),
          width: document.documentElement.scrollWidth, viewport: window.innerWidth};
}"""


def overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def some_history(cast):
    old = make_release(cast.service, version="1.0.0", image="registry.example/storefront:1.0.0")
    new = make_release(cast.service, version="1.1.0", image="registry.example/storefront:1.1.0")
    for env in (cast.dev, cast.staging, cast.prod):
        succeed_in(old, env)
    pods = [
        {
            "name": f"storefront-7d9c8b-{n}x2q9",
            "status": "Running",
            "ready": True,
            "restarts": 0,
            "image": new.image,
            "hash": "7d9c8b",
            "terminating": False,
        }
        for n in range(4)
    ]
    progress = {
        "status": "complete",
        "message": 'Deployment "storefront" successfully rolled out (4/4 available).',
        "desired": 4,
        "updated": 4,
        "ready": 4,
        "available": 4,
        "total": 4,
        "new_ready": 4,
        "new_available": 4,
        "max_total": 5,
        "min_required": 3,
        "pods": pods,
    }
    downtime = {"checked": True, "min_available": 3, "min_required": 3, "dropped": False, "seconds": 0}
    done = make_deployment(
        new,
        cast.dev,
        state=states.SUCCEEDED,
        previous_release=old,
        finished_at=timezone.now(),
        started_at=timezone.now(),
        progress=progress,
        downtime=downtime,
    )
    pending = make_deployment(new, cast.prod, previous_release=old, requested_by=cast.dave)
    build = Build.objects.create(
        service=cast.service,
        job_name="storefront/build",
        number=7,
        state=states.BUILD_SUCCEEDED,
        result="SUCCESS",
        git_sha="67d8e012e7512b3b59e304b15d7de31b0bc79341",
        version="1.1.0",
        release=new,
        parameters={
            "SERVICE": "storefront",
            "GIT_REF": "67d8e012e7512b3b59e304b15d7de31b0bc79341",
            "VERSION": "1.1.0",
            "PORTAL_BUILD_ID": "1",
        },
    )
    return {"pending": pending.pk, "done": done.pk, "release": new.pk, "build": build.pk}


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/services/storefront/",
        "/deployments/{pending}/",
        "/deployments/{done}/",
        "/history/",
        "/approvals/",
        "/releases/{release}/",
        "/builds/{build}/",
        "/environments/prod/",
        "/freezes-and-locks/",
        "/dora/",
    ],
)
def test_it_fits_a_390_px_screen_without_overlap(portal, login, path, tmp_path):
    made = in_thread(some_history, portal.cast)
    page = login("carol", width=390, height=844)
    page.goto(portal.url + path.format(**made))
    expect(page.locator("main h1")).to_be_visible()
    layout = page.evaluate(LAYOUT)
    assert layout["width"] <= layout["viewport"], f"{path} is {layout['width']} px wide on a 390 px screen"
    assert not overlap(layout["logo"], layout["nav"]), layout
    assert not overlap(layout["nav"], layout["who"]), layout
    assert not overlap(layout["logo"], layout["who"]), layout
    shot = DOCS / "mobile.png" if SCREENSHOTS and path == "/" else tmp_path / "mobile.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0


def test_it_puts_the_approval_first_on_a_phone_while_a_deployment_waits(portal, login):
    made = in_thread(some_history, portal.cast)
    page = login("carol", width=390, height=844)
    page.goto(f"{portal.url}/deployments/{made['pending']}/")
    approve = page.locator("#decision-form button[value=approve]").bounding_box()
    rollout = page.locator("#rollout").bounding_box()
    assert approve["y"] < rollout["y"], (approve, rollout)
    page.goto(f"{portal.url}/deployments/{made['done']}/")
    assert page.locator("#rollout").bounding_box()["y"] < page.locator("#actions").bounding_box()["y"]
