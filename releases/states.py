"""The state machines of deployments and builds, as data: the one source of states, labels and tones.

A deployment:

    pending_approval ─→ approved ─→ building ─→ rolling_out ─→ succeeded
       ├→ rejected       ├→ cancelled  ├→ failed    ├→ failed
       └→ cancelled      └→ failed     └→ cancelled └→ cancelled

`building` is the Jenkins deploy job (skipped by `direct` environments). Final: succeeded,
failed, rejected, cancelled. A failed deployment stays failed: going back is a *new*
deployment of kind rollback whose release is the last good one (see releases.flows), which
walks the same states and reads "Rolling back" / "Rolled back" / "Rollback failed".

A Jenkins build: queued → running → succeeded | failed | aborted, or cancelled before it ran.
"""

PENDING_APPROVAL = "pending_approval"
APPROVED = "approved"
BUILDING = "building"
ROLLING_OUT = "rolling_out"
SUCCEEDED = "succeeded"
FAILED = "failed"
REJECTED = "rejected"
CANCELLED = "cancelled"

LABELS = {
    PENDING_APPROVAL: "Pending approval",
    APPROVED: "Approved",
    BUILDING: "Building",
    ROLLING_OUT: "Rolling out",
    SUCCEEDED: "Succeeded",
    FAILED: "Failed",
    REJECTED: "Rejected",
    CANCELLED: "Cancelled",
}
# What a rollback deployment reads in the same states.
ROLLBACK_LABELS = {
    **LABELS,
    ROLLING_OUT: "Rolling back",
    SUCCEEDED: "Rolled back",
    FAILED: "Rollback failed",
}
CHOICES = list(LABELS.items())

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING_APPROVAL: frozenset({APPROVED, REJECTED, CANCELLED}),
    APPROVED: frozenset({BUILDING, ROLLING_OUT, FAILED, CANCELLED}),
    BUILDING: frozenset({ROLLING_OUT, FAILED, CANCELLED}),
    ROLLING_OUT: frozenset({SUCCEEDED, FAILED, CANCELLED}),
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    REJECTED: frozenset(),
    CANCELLED: frozenset(),
}

# Holding one of these blocks another deployment of the same service to the same environment
# (enforced by the partial unique constraint on Deployment).
ACTIVE = frozenset({PENDING_APPROVAL, APPROVED, BUILDING, ROLLING_OUT})
FINAL = frozenset({SUCCEEDED, FAILED, REJECTED, CANCELLED})
# A rollout is under way in the cluster: the watcher's observations advance these.
IN_CLUSTER = frozenset({ROLLING_OUT})
# The watcher looks at these: the cluster runs, or is about to run, the deployment's image.
OBSERVED = frozenset({BUILDING, ROLLING_OUT})
CANCELLABLE = frozenset({PENDING_APPROVAL, APPROVED, BUILDING, ROLLING_OUT})

# Colour families for badges (see static/portal.css).
TONES = {
    PENDING_APPROVAL: "wait",
    APPROVED: "info",
    BUILDING: "info",
    ROLLING_OUT: "info",
    SUCCEEDED: "ok",
    FAILED: "bad",
    REJECTED: "bad",
    CANCELLED: "muted",
}
ROLLBACK_TONES = {**TONES, ROLLING_OUT: "warn", SUCCEEDED: "warn"}

# Builds.
BUILD_QUEUED = "queued"
BUILD_RUNNING = "running"
BUILD_SUCCEEDED = "succeeded"
BUILD_FAILED = "failed"
BUILD_ABORTED = "aborted"
BUILD_CANCELLED = "cancelled"
BUILD_LABELS = {
    BUILD_QUEUED: "Queued",
    BUILD_RUNNING: "Running",
    BUILD_SUCCEEDED: "Succeeded",
    BUILD_FAILED: "Failed",
    BUILD_ABORTED: "Aborted",
    BUILD_CANCELLED: "Cancelled",
}
BUILD_TONES = {
    BUILD_QUEUED: "wait",
    BUILD_RUNNING: "info",
    BUILD_SUCCEEDED: "ok",
    BUILD_FAILED: "bad",
    BUILD_ABORTED: "muted",
    BUILD_CANCELLED: "muted",
}
BUILD_ACTIVE = frozenset({BUILD_QUEUED, BUILD_RUNNING})
BUILD_FINAL = frozenset(BUILD_LABELS) - BUILD_ACTIVE


def can_move(old: str, new: str) -> bool:
    return new in TRANSITIONS.get(old, frozenset())


def label(state: str, kind: str = "deploy") -> str:
    return (ROLLBACK_LABELS if kind == "rollback" else LABELS)[state]


def tone(state: str, kind: str = "deploy") -> str:
    return (ROLLBACK_TONES if kind == "rollback" else TONES)[state]


def vocabulary() -> dict:
    """Everything a page's script needs to draw a state, from this one source (see base.html)."""
    return {
        "deploy": {s: {"label": LABELS[s], "tone": TONES[s]} for s in LABELS},
        "rollback": {s: {"label": ROLLBACK_LABELS[s], "tone": ROLLBACK_TONES[s]} for s in LABELS},
        "build": {s: {"label": BUILD_LABELS[s], "tone": BUILD_TONES[s]} for s in BUILD_LABELS},
        "active": sorted(ACTIVE),
        "final": sorted(FINAL),
        "build_active": sorted(BUILD_ACTIVE),
    }


assert set(TRANSITIONS) == set(LABELS), "every state needs its transitions"
assert ACTIVE | FINAL == set(LABELS)
assert not ACTIVE & FINAL
