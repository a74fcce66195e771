"""JSON documents shaped like Jenkins' remote API (`.../api/json`) for jobs, queue and builds."""

from .model import Build, Jenkins, JobRecord, QueueItem, now_ms

WORKFLOW_JOB = "org.jenkinsci.plugins.workflow.job.WorkflowJob"
WORKFLOW_RUN = "org.jenkinsci.plugins.workflow.job.WorkflowRun"
FOLDER = "com.cloudbees.hudson.plugins.folder.Folder"

COLORS = {
    "SUCCESS": "blue",
    "UNSTABLE": "yellow",
    "FAILURE": "red",
    "ABORTED": "aborted",
    "NOT_BUILT": "notbuilt",
}


def color(state: Jenkins, job: str) -> str:
    last = state.get_build(job, "lastBuild")
    if last is None:
        return "notbuilt"
    if last.building:
        previous = state.get_build(job, "lastCompletedBuild")
        return f"{COLORS[previous.result] if previous else 'notbuilt'}_anime"
    return COLORS.get(last.result, "notbuilt")


def hudson(state: Jenkins, folder: str = "") -> dict:
    """The root (`api/json`) or a folder's document: both list their direct children."""
    jobs = []
    for short in state.children(folder):
        full = f"{folder}/{short}" if folder else short
        item = {"name": short, "url": state.job_url(full)}
        if state.is_folder(full):
            item["_class"] = FOLDER
        else:
            item.update({"_class": WORKFLOW_JOB, "color": color(state, full)})
        jobs.append(item)
    if not folder:
        return {
            "_class": "hudson.model.Hudson",
            "mode": "NORMAL",
            "nodeName": "",
            "nodeDescription": "the Jenkins controller's built-in node",
            "numExecutors": 2,
            "description": None,
            "useSecurity": True,
            "url": f"{state.root_url}/",
            "jobs": jobs,
            "views": [{"_class": "hudson.model.AllView", "name": "all", "url": f"{state.root_url}/"}],
        }
    return {
        "_class": FOLDER,
        "name": folder.split("/")[-1],
        "fullName": folder,
        "displayName": folder.split("/")[-1],
        "fullDisplayName": folder.replace("/", " » "),
        "url": state.job_url(folder),
        "description": None,
        "jobs": jobs,
    }


def _ref(build: Build | None) -> dict | None:
    if build is None:
        return None
    return {"_class": WORKFLOW_RUN, "number": build.number, "url": build.url}


def job(state: Jenkins, name: str) -> dict:
    with state.lock:
        # Reading a job must not create it: only seeded or built jobs are listed in api/json.
        record = state.jobs.get(name) or JobRecord(name)
        builds = sorted(record.builds.values(), key=lambda b: b.number, reverse=True)
        queued = [q for q in state.queue.values() if q.job == name and not q.left]
        aliases = {
            key: _ref(state.get_build(name, key))
            for key in (
                "lastBuild",
                "lastCompletedBuild",
                "lastFailedBuild",
                "lastStableBuild",
                "lastSuccessfulBuild",
                "lastUnsuccessfulBuild",
            )
        }
        config = state.config_for(name)
        return {
            "_class": WORKFLOW_JOB,
            "actions": [],
            "description": config.description,
            "displayName": name.split("/")[-1],
            "displayNameOrNull": None,
            "fullDisplayName": name.replace("/", " » "),
            "fullName": name,
            "name": name.split("/")[-1],
            "url": state.job_url(name),
            "buildable": True,
            "builds": [_ref(b) for b in builds],
            "allBuilds": [_ref(b) for b in builds],  # what `tree=allBuilds[...]` asks for
            "color": color(state, name),
            "firstBuild": _ref(builds[-1] if builds else None),
            "healthReport": [],
            "inQueue": bool(queued),
            "keepDependencies": False,
            **aliases,
            "lastUnstableBuild": None,
            "nextBuildNumber": record.next_number,
            "property": [],
            "queueItem": _queue_ref(queued[0]) if queued else None,
            "concurrentBuild": True,
            "resumeBlocked": False,
        }


def _queue_ref(item: QueueItem) -> dict:
    return {
        "_class": "hudson.model.Queue$WaitingItem",
        "id": item.id,
        "url": f"queue/item/{item.id}/",
    }


def _actions(params: dict[str, str], user: str) -> list[dict]:
    actions = [
        {
            "_class": "hudson.model.CauseAction",
            "causes": [
                {
                    "_class": "hudson.model.Cause$UserIdCause",
                    "shortDescription": f"Started by user {user}",
                    "userId": user,
                    "userName": user,
                }
            ],
        }
    ]
    if params:
        actions.append(
            {
                "_class": "hudson.model.ParametersAction",
                "parameters": [
                    {"_class": "hudson.model.StringParameterValue", "name": k, "value": v} for k, v in params.items()
                ],
            }
        )
    return actions


def queue_item(state: Jenkins, item: QueueItem) -> dict:
    task = {
        "_class": WORKFLOW_JOB,
        "name": item.job.split("/")[-1],
        "url": state.job_url(item.job),
        "color": color(state, item.job),
    }
    doc = {
        "actions": _actions(item.params, item.user),
        "blocked": False,
        "buildable": False,
        "id": item.id,
        "inQueueSince": item.in_queue_since,
        "params": "".join(f"\n{k}={v}" for k, v in item.params.items()),
        "stuck": False,
        "task": task,
        "url": f"queue/item/{item.id}/",
        "why": None,
    }
    if item.left:
        doc["_class"] = "hudson.model.Queue$LeftItem"
        doc["cancelled"] = item.cancelled
        doc["executable"] = _ref(item.build)
        return {"_class": doc.pop("_class"), **doc}
    remaining = item.in_queue_since + item.wait_seconds * 1000 - now_ms()
    doc["why"] = f"In the quiet period. Expires in {max(0, remaining) / 1000:.2f} sec"
    doc["timestamp"] = int(item.in_queue_since + item.wait_seconds * 1000)
    return {"_class": "hudson.model.Queue$WaitingItem", **doc}


def queue(state: Jenkins) -> dict:
    with state.lock:
        waiting = [queue_item(state, q) for q in state.queue.values() if not q.left]
    return {"_class": "hudson.model.Queue", "discoverableItems": [], "items": waiting}


def build(state: Jenkins, b: Build) -> dict:
    with state.lock:
        actions = _actions(b.params, b.user)
        if b.tests is not None:
            actions.append(
                {
                    "_class": "hudson.tasks.junit.TestResultAction",
                    "failCount": b.tests["failed"],
                    "skipCount": b.tests["skipped"],
                    "totalCount": b.tests["total"],
                    "urlName": "testReport",
                }
            )
        return {
            "_class": WORKFLOW_RUN,
            "actions": actions,
            "artifacts": [
                {"displayPath": p.split("/")[-1], "fileName": p.split("/")[-1], "relativePath": p}
                for p in (b.config.artifacts if not b.building else [])
            ],
            "building": b.building,
            "description": None,
            "displayName": b.display_name,
            "duration": b.duration if not b.building else 0,
            "estimatedDuration": b.estimated_duration,
            "executor": {"_class": "hudson.model.OneOffExecutor"} if b.building else None,
            "fullDisplayName": f"{b.job.replace('/', ' » ')} {b.display_name}",
            "id": str(b.number),
            "keepLog": False,
            "number": b.number,
            "queueId": b.queue_id,
            "result": b.result if not b.building else None,
            "timestamp": b.timestamp,
            "url": b.url,
            "changeSets": [],
            "changeSet": {"_class": "hudson.scm.EmptyChangeLogSet", "items": [], "kind": None},
            "culprits": [],
            "inProgress": b.building,
            "nextBuild": None,
            "previousBuild": None,
        }


def whoami(state: Jenkins, user: str) -> dict:
    return {
        "_class": "hudson.model.User",
        "absoluteUrl": f"{state.root_url}/user/{user}",
        "description": None,
        "fullName": user,
        "id": user,
        "property": [],
    }


def test_report(b: Build) -> dict:
    """`<build>/testReport/api/json`, the junit plugin's summary (suites left out)."""
    tests = b.tests or {}
    return {
        "_class": "hudson.tasks.junit.TestResult",
        "duration": b.duration / 1000,
        "empty": not tests,
        "failCount": tests.get("failed", 0),
        "passCount": tests.get("passed", 0),
        "skipCount": tests.get("skipped", 0),
        "suites": [],
    }
