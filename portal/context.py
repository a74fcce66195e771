from django.utils.functional import SimpleLazyObject

from releases import board, builds, states
from releases.models import Build
from releases.templatetags.jenkins_tags import TONES as BUILD_TONES


def _vocabulary() -> dict:
    """Labels and tones of every state, for the scripts (base.html puts this in a json_script),
    read from where the templates read them: releases.states and the Build model."""
    deploy = {state: {"label": label, "tone": states.TONES[state]} for state, label in states.CHOICES}
    return {
        "deploy": deploy,
        "rollback": deploy,
        "build": {state: {"label": label, "tone": BUILD_TONES[state]} for state, label in Build.STATES},
        "active": sorted(states.ACTIVE),
        "final": sorted(states.FINAL),
        "build_active": sorted(builds.ACTIVE),
    }


VOCABULARY = _vocabulary()
WAITING_LIMIT = 500


def navigation(request):
    """The state vocabulary, and the approvals badge in the header for a logged-in user."""
    context = {"state_vocabulary": VOCABULARY}
    user = getattr(request, "user", None)
    if user and user.is_authenticated:
        # Ids, not a count: the header's script knows which updates can change the badge.
        context["nav_waiting"] = SimpleLazyObject(
            lambda: list(board.waiting_for(user).values_list("pk", flat=True)[:WAITING_LIMIT])
        )
    return context
