"""The OpenAPI side of the API: the bearer scheme, the error shapes and examples every
endpoint shares, and links between operations (what a client, or Schemathesis, can call
next with the id it just got)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers

from releases.models import Build

# Named enums in the schema (SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]).
BUILD_STATES = Build._meta.get_field("state").choices


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "releases.api.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "A personal or service-account API token (`pmp_…`) with scopes read, deploy, approve, admin. "
                "It acts as its owner: the same rules as in the browser."
            ),
        }


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, for a person.")
    reasons = serializers.ListField(
        child=serializers.CharField(), help_text="Every reason, as the pages list them (at least one)."
    )


class ValidationErrorSerializer(ErrorSerializer):
    errors = serializers.DictField(help_text="Field name → list of messages (nested for nested fields).")


def _error_example(name: str, status: int, detail: str, reasons: list | None = None, **more) -> OpenApiExample:
    """An example error answer: `detail`, and `reasons` (only that detail, unless given)."""
    value = {"detail": detail, "reasons": reasons or [detail], **more}
    return OpenApiExample(name, status_codes=[str(status)], response_only=True, value=value)


REFUSED = _error_example(
    "Refused by a rule", 403, "You are not a deployer for Staging (developers). Ask an admin to add you."
)
CONFLICT = _error_example(
    "Something else under way",
    409,
    "Storefront already has deployment #41 rolling out in Staging. Wait for it to finish or cancel it.",
)
INVALID = _error_example(
    "Bad input",
    400,
    "The request is not valid: see errors.",
    ["environment: Object with slug=stagin does not exist."],
    errors={"environment": ["Object with slug=stagin does not exist."]},
)
UNAUTHENTICATED = _error_example("No usable token", 401, "API token ci-bot was revoked.")
NOT_FOUND = _error_example("Unknown", 404, "Not found.")


ERRORS = {
    400: OpenApiResponse(ValidationErrorSerializer, "Bad input; nothing was changed.", examples=[INVALID]),
    401: OpenApiResponse(
        ErrorSerializer, "No credentials, or a token that is unknown, expired or revoked.", examples=[UNAUTHENTICATED]
    ),
    403: OpenApiResponse(
        ErrorSerializer, "A rule, the token's scopes or CSRF said no: every reason.", examples=[REFUSED]
    ),
    404: OpenApiResponse(ErrorSerializer, "No such object.", examples=[NOT_FOUND]),
    409: OpenApiResponse(ErrorSerializer, "Refused: something else is under way.", examples=[CONFLICT]),
}


def responses(ok: dict, *codes: int) -> dict:
    """`ok` plus the shared error responses: 401 always, and each of `codes`."""
    return {**ok, **{code: ERRORS[code] for code in sorted({401, *codes})}}


# Where an answer holds the object its links are about: itself, the first of a list, the first
# of a keyset page.
ITSELF, FIRST, FIRST_ON_PAGE = "", "/0", "/results/0"

# operationId → (the status answering it, where the object is, its key, what can be done with it
# next). A next operation takes the key as the path parameter of that name, or, given as
# (operationId, field), as that field of its request body.
LINKS = {
    "createRelease": ("201", ITSELF, "id", ["getRelease", ("requestDeployment", "release")]),
    "requestDeployment": (
        "201",
        ITSELF,
        "id",
        ["getDeployment", "approveDeployment", "rejectDeployment", "cancelDeployment"],
    ),
    "rollback": ("201", ITSELF, "id", ["getDeployment"]),
    "startBuild": ("201", ITSELF, "id", ["getBuild", "abortBuild"]),
    "createLock": ("201", ITSELF, "id", ["releaseLock"]),
    "listServices": ("200", FIRST, "slug", ["getService", "rollback"]),
    "listEnvironments": ("200", FIRST, "slug", ["getEnvironment"]),
    "listReleases": ("200", FIRST_ON_PAGE, "id", ["getRelease"]),
    "listDeployments": ("200", FIRST_ON_PAGE, "id", ["getDeployment", "cancelDeployment"]),
    "listBuilds": ("200", FIRST_ON_PAGE, "id", ["getBuild"]),
    "listLocks": ("200", FIRST, "id", ["releaseLock"]),
    "listFreezes": ("200", FIRST, "id", ["endFreeze"]),
    "createFreeze": ("201", ITSELF, "id", ["endFreeze"]),
}


def _link(target: str | tuple[str, str], key: str, value: str) -> tuple[str, dict]:
    """The name of an OpenAPI link to `target`, and the link: it passes `value` (a runtime
    expression) as the parameter `key`, or as the body field `target` names."""
    operation_id, field = target if isinstance(target, tuple) else (target, None)
    passed = {"requestBody": {field: value}} if field else {"parameters": {key: value}}
    return operation_id[0].upper() + operation_id[1:], {"operationId": operation_id, **passed}


def describe_path_parameters(result, generator, request, public):
    """Postprocessing hook: "The deployment's id." for {id} in /deployments/{id}/, and so on."""
    for path, path_item in result.get("paths", {}).items():
        segments = path.strip("/").split("/")
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] != "path" or parameter.get("description"):
                    continue
                owner = segments[segments.index("{" + parameter["name"] + "}") - 1]
                parameter["description"] = f"The {owner.removesuffix('s')}'s {parameter['name']}."
    return result


def add_links(result, generator, request, public):
    """Postprocessing hook: OpenAPI links from each create to what can be done with its result."""
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            found = LINKS.get(operation.get("operationId"))
            if not found:
                continue
            status, where, key, targets = found
            response = operation.get("responses", {}).get(status)
            if response is None:
                continue
            response["links"] = dict(_link(target, key, f"$response.body#{where}/{key}") for target in targets)
    return result


def listed(serializer_class, filter_class) -> dict:
    """The `operation` arguments of a list: rows of `serializer_class`, filtered by the query-string
    parameters of `filter_class` (400 when they are not valid)."""
    return {"answers": responses({200: serializer_class(many=True)}, 400), "parameters": [filter_class]}


def operation(operation_id: str, summary: str, answers: dict, *, example: tuple | None = None, **more):
    """One endpoint's schema: its id, a summary, its responses (from `responses`) and, for a
    write, one request example given as (name, value); anything else goes to extend_schema."""
    if example is not None:
        name, value = example
        more["examples"] = [OpenApiExample(name, request_only=True, value=value)]
    return extend_schema(operation_id=operation_id, summary=summary, responses=answers, **more)
