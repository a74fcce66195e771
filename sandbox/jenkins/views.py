"""JSON documents shaped like Jenkins' remote API (`.../api/json`): root, folders, jobs, queue,
builds and the built-in node with its executors.

`depth` works as in Jenkins: at 0 nested objects are references (`_class`, `name`/`number`,
`url`), each level more expands them (builds in a job, jobs in a folder, the build on an
executor). `tree=` (tree.py) is applied by the handler to a document built deep enough. Every URL
is absolute and percent-encoded per path segment, as Jenkins writes them (model.raw_encode).
"""

from urllib.parse import unquote

from . import junit
from .model import Build, Jenkins, JobRecord, QueueItem, now_ms

WORKFLOW_JOB = "org.jenkinsci.plugins.workflow.job.WorkflowJob"
WORKFLOW_RUN = "org.jenkinsci.plugins.workflow.job.WorkflowRun"
FOLDER = "com.cloudbees.hudson.plugins.folder.Folder"
MULTIBRANCH = "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
BUILT_IN = "Built-In Node"

COLORS = {
    "SUCCESS": "blue",
    "UNSTABLE": "yellow",
    "FAILURE": "red",
    "ABORTED": "aborted",
    "NOT_BUILT": "notbuilt",
}
ALIASES = (
    "lastBuild",
    "lastCompletedBuild",
    "lastFailedBuild",
    "lastStableBuild",
    "lastSuccessfulBuild",
    "lastUnsuccessfulBuild",
)


def color(state: Jenkins, job: str) -> str:
    last = state.get_build(job, "lastBuild")
    if last is None:
        return "notbuilt"
    if last.building:
        previous = state.get_build(job, "lastCompletedBuild")
        return f"{COLORS[previous.result] if previous else 'notbuilt'}_anime"
    return COLORS.get(last.result, "notbuilt")


def display_name(name: str) -> str:
    """The short name people see: a multibranch branch job's item name is its encoded branch."""
    short = name.split("/")[-1]
    return unquote(short) if "%" in short else short


def folder_class(state: Jenkins, folder: str) -> str:
    # Branch jobs carry encoded names (feature%2Fx): their parent is a multibranch project.
    return MULTIBRANCH if any("%" in child for child in state.children(folder)) else FOLDER


# ------------------------------------------------------------------ root, folders, jobs
def _item(state: Jenkins, full: str, depth: int) -> dict:
    """A job or folder as listed in its parent's `jobs`."""
    if depth > 0:
        return folder(state, full, depth - 1) if state.is_folder(full) else job(state, full, depth - 1)
    item = {"name": full.split("/")[-1], "url": state.job_url(full)}
    if state.is_folder(full):
        return {"_class": folder_class(state, full), **item}
    return {"_class": WORKFLOW_JOB, **item, "color": color(state, full)}


def _children(state: Jenkins, parent: str, depth: int) -> list[dict]:
    return [_item(state, f"{parent}/{short}" if parent else short, depth) for short in state.children(parent)]


def hudson(state: Jenkins, depth: int = 0) -> dict:
    """The root document (`api/json`)."""
    return {
        "_class": "hudson.model.Hudson",
        "mode": "NORMAL",
        "nodeName": "",
        "nodeDescription": "the Jenkins controller's built-in node",
        "numExecutors": state.executors,
        "description": None,
        "useSecurity": True,
        "url": f"{state.root_url}/",
        "jobs": _children(state, "", depth),
        "views": [{"_class": "hudson.model.AllView", "name": "all", "url": f"{state.root_url}/"}],
    }


def folder(state: Jenkins, name: str, depth: int = 0) -> dict:
    short = name.split("/")[-1]
    return {
        "_class": folder_class(state, name),
        "actions": [],
        "name": short,
        "fullName": name,
        "displayName": display_name(name),
        "fullDisplayName": " » ".join(display_name(p) for p in name.split("/")),
        "url": state.job_url(name),
        "description": None,
        "healthReport": [],
        "jobs": _children(state, name, depth),
    }


def job(state: Jenkins, name: str, depth: int = 0) -> dict:
    with state.lock:
        record = state.jobs.get(name) or JobRecord(name)
        builds = sorted(record.builds.values(), key=lambda b: b.number, reverse=True)
        queued = [q for q in state.queue.values() if q.job == name and not q.left]
        aliases = {key: _build_ref(state, state.get_build(name, key), depth) for key in ALIASES}
        config = state.config_for(name)
        return {
            "_class": WORKFLOW_JOB,
            "actions": [],
            "description": config.description,
            "displayName": display_name(name),
            "displayNameOrNull": None,
            "fullDisplayName": " » ".join(display_name(p) for p in name.split("/")),
            "fullName": name,
            "name": name.split("/")[-1],
            "url": state.job_url(name),
            "buildable": True,
            "builds": [_build_ref(state, b, depth) for b in builds],
            "allBuilds": [_build_ref(state, b, depth) for b in builds],  # what `tree=allBuilds[...]` asks for
            "color": color(state, name),
            "firstBuild": _build_ref(state, builds[-1] if builds else None, depth),
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


def _build_ref(state: Jenkins, b: Build | None, depth: int) -> dict | None:
    if b is None:
        return None
    if depth > 0:
        return build(state, b, depth - 1)
    return {"_class": WORKFLOW_RUN, "number": b.number, "url": b.url}


# ----------------------------------------------------------------------- queue
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
        doc["executable"] = _build_ref(state, item.build, 0)
        return {"_class": doc.pop("_class"), **doc}
    remaining = item.in_queue_since + item.wait_seconds * 1000 - now_ms()
    doc["why"] = f"In the quiet period. Expires in {max(0, remaining) / 1000:.2f} sec"
    doc["timestamp"] = int(item.in_queue_since + item.wait_seconds * 1000)
    return {"_class": "hudson.model.Queue$WaitingItem", **doc}


def queue(state: Jenkins) -> dict:
    with state.lock:
        waiting = [queue_item(state, q) for q in state.queue.values() if not q.left]
    return {"_class": "hudson.model.Queue", "discoverableItems": [], "items": waiting}


# ----------------------------------------------------------------------- builds
def build(state: Jenkins, b: Build, depth: int = 0) -> dict:
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
            "fullDisplayName": f"{' » '.join(display_name(p) for p in b.job.split('/'))} {b.display_name}",
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


# ------------------------------------------------------------- nodes and executors
def _executor(state: Jenkins, number: int, running: Build | None, depth: int) -> dict:
    if depth <= 0:
        return {"_class": "hudson.model.Executor"}
    progress = -1
    if running is not None and running.estimated_duration > 0:
        progress = min(99, (now_ms() - running.timestamp) * 100 // running.estimated_duration)
    return {
        "_class": "hudson.model.Executor",
        "currentExecutable": _build_ref(state, running, depth - 1),
        "idle": running is None,
        "likelyStuck": False,
        "number": number,
        "progress": progress,
    }


def computer(state: Jenkins, depth: int = 0) -> dict:
    """The built-in node (`computer/(built-in)/api/json`): a running build holds an executor;
    builds beyond the node's executors run on one-off (flyweight) executors, as pipelines do."""
    with state.lock:
        running = {b.executor: b for b in state.running_builds()}
    executors = [_executor(state, n, running.get(n), depth) for n in range(state.executors)]
    one_off = [_executor(state, n, b, depth) for n, b in sorted(running.items()) if n >= state.executors]
    return {
        "_class": "hudson.model.Hudson$MasterComputer",
        "actions": [],
        "assignedLabels": [{"name": "built-in"}],
        "description": "the Jenkins controller's built-in node",
        "displayName": BUILT_IN,
        "executors": executors,
        "icon": "symbol-computer",
        "iconClassName": "symbol-computer",
        "idle": not running,
        "jnlpAgent": False,
        "launchSupported": True,
        "loadStatistics": {"_class": "hudson.model.Label$1"},
        "manualLaunchAllowed": True,
        "monitorData": {},
        "numExecutors": state.executors,
        "offline": False,
        "offlineCause": None,
        "offlineCauseReason": "",
        "oneOffExecutors": one_off,
        "temporarilyOffline": False,
    }


def computer_set(state: Jenkins, depth: int = 0) -> dict:
    """`computer/api/json`: every node (the sandbox has only the built-in one)."""
    node = computer(state, depth)
    busy = sum(1 for b in state.running_builds() if b.executor < state.executors)
    return {
        "_class": "hudson.model.ComputerSet",
        "busyExecutors": busy,
        "computer": [node],
        "displayName": "Nodes",
        "totalExecutors": state.executors,
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
    """`<build>/testReport/api/json`, the junit plugin's report with its suites and cases."""
    return junit.report(b.tests or {}, b.duration / 1000)
