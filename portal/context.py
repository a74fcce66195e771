from releases import board


def navigation(request):
    """The approvals badge in the header, on every page for a logged-in user."""
    user = getattr(request, "user", None)
    if not user or not user.is_authenticated:
        return {}
    return {"nav_waiting": lambda: board.waiting_for(user).count()}
