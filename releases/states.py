"""The deployment state machine, as data.

pending_approval ─→ approved ─→ building ─→ rolling_out ─→ succeeded
   ├→ rejected       ├→ cancelled  ├→ failed    ├→ failed ─(auto-rollback)→ rolling_back ─→ rolled_back
   └→ cancelled                    └→ cancelled └→ cancelled

`building` is the Jenkins deploy job (skipped by `direct` environments).
"""

PENDING_APPROVAL = "pending_approval"
APPROVED = "approved"
BUILDING = "building"
ROLLING_OUT = "rolling_out"
ROLLING_BACK = "rolling_back"
SUCCEEDED = "succeeded"
FAILED = "failed"
ROLLED_BACK = "rolled_back"
REJECTED = "rejected"
CANCELLED = "cancelled"

LABELS = {
    PENDING_APPROVAL: "Pending approval",
    APPROVED: "Approved",
    BUILDING: "Building",
    ROLLING_OUT: "Rolling out",
    ROLLING_BACK: "Rolling back",
    SUCCEEDED: "Succeeded",
    FAILED: "Failed",
    ROLLED_BACK: "Rolled back",
    REJECTED: "Rejected",
    CANCELLED: "Cancelled",
}
CHOICES = list(LABELS.items())

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING_APPROVAL: frozenset({APPROVED, REJECTED, CANCELLED}),
    APPROVED: frozenset({BUILDING, ROLLING_OUT, FAILED, CANCELLED}),
    BUILDING: frozenset({ROLLING_OUT, FAILED, CANCELLED}),
    ROLLING_OUT: frozenset({SUCCEEDED, FAILED, CANCELLED}),
    FAILED: frozenset({ROLLING_BACK}),
    ROLLING_BACK: frozenset({ROLLED_BACK, FAILED}),
    SUCCEEDED: frozenset(),
    ROLLED_BACK: frozenset(),
    REJECTED: frozenset(),
    CANCELLED: frozenset(),
}

# Holding one of these blocks another deployment of the same service to the same environment
# (enforced by the partial unique constraint on Deployment).
ACTIVE = frozenset({PENDING_APPROVAL, APPROVED, BUILDING, ROLLING_OUT, ROLLING_BACK})
FINAL = frozenset({SUCCEEDED, FAILED, ROLLED_BACK, REJECTED, CANCELLED})
# A rollout is under way in the cluster: the watcher's observations advance these.
IN_CLUSTER = frozenset({ROLLING_OUT, ROLLING_BACK})
CANCELLABLE = frozenset({PENDING_APPROVAL, APPROVED, BUILDING, ROLLING_OUT})

# Colour families for badges (see static/portal.css).
TONES = {
    PENDING_APPROVAL: "wait",
    APPROVED: "info",
    BUILDING: "info",
    ROLLING_OUT: "info",
    ROLLING_BACK: "warn",
    SUCCEEDED: "ok",
    FAILED: "bad",
    ROLLED_BACK: "warn",
    REJECTED: "bad",
    CANCELLED: "muted",
}


def can_move(old: str, new: str) -> bool:
    return new in TRANSITIONS.get(old, frozenset())


assert set(TRANSITIONS) == set(LABELS), "every state needs its transitions"
assert ACTIVE | FINAL == set(LABELS)
assert not ACTIVE & FINAL
