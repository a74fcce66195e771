"""One error shape for the whole API: `{"detail": str, "reasons": [str, …]}`, plus `errors`
(field → messages) on a 400.

A rule's refusal (`rules.Refused`) lists the same reasons the pages show: 403, or 409 when
something else is under way (`Refused.conflict`).
"""

from django.contrib.auth.decorators import login_not_required
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from releases import rules

INVALID = "The request is not valid: see errors."


def body(detail: str, reasons: list[str] | None = None, errors: dict | None = None) -> dict:
    data = {"detail": detail, "reasons": reasons or [detail]}
    if errors is not None:
        data["errors"] = errors
    return data


def refusal(refused: rules.Refused) -> Response:
    code = status.HTTP_409_CONFLICT if refused.conflict else status.HTTP_403_FORBIDDEN
    return Response(body(str(refused), refused.reasons), status=code)


def handle(exc, context):
    """DRF's exception handler, reshaped; anything it does not know stays a 500 (a bug to fix)."""
    if isinstance(exc, rules.Refused):
        return refusal(exc)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = response.data if isinstance(response.data, dict) else {"non_field_errors": response.data}
        response.data = body(INVALID, list(flatten(errors)), errors)
    elif response.status_code == status.HTTP_400_BAD_REQUEST:  # a body that is not JSON
        response.data = body(str(response.data.get("detail", exc)), errors={})
    else:
        response.data = body(str(response.data.get("detail", exc)))
    return response


def flatten(errors, prefix: str = ""):
    """{"a": ["x"], "b": {"c": ["y"]}} → "a: x", "b.c: y" (the reasons of a 400)."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(errors, list):
        for value in errors:
            yield from flatten(value, prefix)
    else:
        yield f"{prefix}: {errors}" if prefix and prefix != "non_field_errors" else str(errors)


@csrf_exempt
@login_not_required
def not_found(request, *args, **kwargs):
    """Unknown paths under /api/ answer JSON (and never redirect to a login page)."""
    detail = f"There is no API endpoint {request.path}."
    if not request.path.endswith("/"):
        detail += " API paths end with a slash."
    return JsonResponse(body(detail), status=404)
