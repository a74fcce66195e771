from django.utils.functional import SimpleLazyObject

from releases import board, states

# Labels and tones of every state, for the scripts (base.html puts it in a json_script).
VOCABULARY = states.vocabulary()
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
