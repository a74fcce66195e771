"""python-jenkins against what makes the sandbox Jenkins behave like a real one: jobs that exist
only when seeded or created, URLs encoded as Jenkins encodes them, `tree` and `depth`, nodes and
executors, and notifications carrying the console log."""

import json
from http.server import BaseHTTPRequestHandler

import jenkins
import pytest
import requests

from sandbox.http import serve
from sandbox.jenkins import start
from tests.support import wait_until

USER, TOKEN = "jenkins", "jenkins-token"
SEED = {
    "jobs": {
        "shop/build": {},
        "Store Front/release%2F1.2": {"duration": 0.3},
        "deploy/prod": {"duration": 2},
    }
}


@pytest.fixture
def sandbox():
    handle = start(user=USER, token=TOKEN, seed=SEED, queue_seconds=0.05, build_seconds=0.3)
    yield handle
    handle.stop()


@pytest.fixture
def server(sandbox):
    return jenkins.Jenkins(sandbox.url, USER, TOKEN, timeout=5)


def started(server, queue_id) -> int:
    return wait_until(lambda: (server.get_queue_item(queue_id).get("executable") or {}).get("number"))


def test_it_answers_404_for_a_job_that_was_never_seeded_or_created(server, sandbox):
    with pytest.raises(jenkins.NotFoundException):
        server.build_job("shop/biuld", {"VERSION": "1"})
    with pytest.raises(jenkins.JenkinsException, match="does not exist"):
        server.get_job_info("shop/biuld")
    assert not server.job_exists("shop/biuld")
    assert sandbox.builds() == []


def test_it_creates_and_deletes_jobs(server, sandbox):
    server.create_job("made-here", jenkins.EMPTY_CONFIG_XML)
    assert server.job_exists("made-here")
    number = started(server, server.build_job("made-here"))
    assert number == 1
    server.delete_job("made-here")
    assert not server.job_exists("made-here")


def test_it_finds_every_job_in_folders_with_tree(server):
    jobs = {j["fullname"]: j for j in server.get_all_jobs()}
    assert set(jobs) >= {"shop", "shop/build", "Store Front", "Store Front/release%2F1.2", "deploy", "deploy/prod"}
    assert jobs["Store Front/release%2F1.2"]["url"].endswith("/job/Store%20Front/job/release%252F1.2/")
    top = server.get_jobs(folder_depth=0)
    assert {j["fullname"] for j in top} == {"shop", "Store Front", "deploy"}


def test_it_honours_tree_and_depth(sandbox, server):
    started(server, server.build_job("shop/build"))
    auth = (USER, TOKEN)
    shallow = requests.get(f"{sandbox.url}/job/shop/job/build/api/json?tree=builds[number]", auth=auth, timeout=5)
    assert shallow.json() == {
        "_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
        "builds": [{"_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun", "number": 1}],
    }
    deep = requests.get(f"{sandbox.url}/job/shop/job/build/api/json?depth=1", auth=auth, timeout=5).json()
    assert "queueId" in deep["builds"][0]  # depth 1 expands the builds
    ranged = requests.get(f"{sandbox.url}/api/json?tree=jobs[name]{{0,1}}", auth=auth, timeout=5).json()
    assert len(ranged["jobs"]) == 1
    bad = requests.get(f"{sandbox.url}/api/json?tree=jobs[name", auth=auth, timeout=5)
    assert bad.status_code == 400


def test_it_encodes_job_urls_as_jenkins_does(server, sandbox):
    info = server.get_job_info("Store Front/release%2F1.2")
    assert info["url"] == f"{sandbox.url}/job/Store%20Front/job/release%252F1.2/"
    assert info["displayName"] == "release/1.2"
    assert info["fullName"] == "Store Front/release%2F1.2"
    assert server.get_job_info("Store Front")["_class"].endswith("WorkflowMultiBranchProject")
    queue_id = server.build_job("Store Front/release%2F1.2", {"VERSION": "1.2.0"})
    number = started(server, queue_id)
    assert server.get_queue_item(queue_id)["executable"]["url"].endswith("/job/Store%20Front/job/release%252F1.2/1/")
    build = server.get_build_info("Store Front/release%2F1.2", number)
    assert build["url"] == f"{sandbox.url}/job/Store%20Front/job/release%252F1.2/1/"


def test_it_shows_running_builds_on_the_built_in_nodes_executors(server):
    queue_id = server.build_job("deploy/prod", {"VERSION": "2"})
    number = started(server, queue_id)
    nodes = server.get_nodes()
    assert nodes == [{"name": "Built-In Node", "offline": False}]
    running = server.get_running_builds()
    assert [(b["name"], b["number"], b["node"], b["executor"]) for b in running] == [("deploy", number, "(master)", 0)]
    assert running[0]["url"].endswith("/job/deploy/job/prod/1/")
    server.stop_build("deploy/prod", number)
    wait_until(lambda: not server.get_build_info("deploy/prod", number)["building"])
    assert server.get_running_builds() == []


class Collector(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers["Content-Length"])
        self.server.bodies.append(self.rfile.read(length))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_it_sends_the_whole_console_log_when_the_plugin_is_set_to(tmp_path):
    collector = serve(Collector, bodies=[])
    handle = start(
        user=USER,
        token=TOKEN,
        seed={"jobs": {"Store Front/release%2F1.2": {"log_lines": 500}}},
        notify_url=collector.url,
        notify_log_lines=-1,
        build_seconds=0.3,
        queue_seconds=0.05,
    )
    try:
        server = jenkins.Jenkins(handle.url, USER, TOKEN, timeout=5)
        server.build_job("Store Front/release%2F1.2", {"VERSION": "1.2.0"})
        handle.wait_for_build("Store Front/release%2F1.2", 1)
        wait_until(lambda: len(collector.server.bodies) == 4)
    finally:
        handle.stop()
        collector.stop()
    finalized = json.loads(collector.server.bodies[-1])
    assert finalized["url"] == "job/Store%20Front/job/release%252F1.2/"
    assert finalized["name"] == "release%2F1.2"
    assert finalized["display_name"] == "release/1.2"
    assert finalized["build"]["url"] == "job/Store%20Front/job/release%252F1.2/1/"
    assert finalized["build"]["full_url"] == f"{handle.url}/job/Store%20Front/job/release%252F1.2/1/"
    assert "compiling module 500/500" in finalized["build"]["log"]
    assert finalized["build"]["log"].endswith("Finished: SUCCESS\n")  # FINALIZED: the log is complete
