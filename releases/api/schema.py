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


REFUSED = OpenApiExample(
    "Refused by a rule",
    status_codes=["403"],
    response_only=True,
    value={
        "detail": "You are not a deployer for Staging (developers). Ask an admin to add you.",
        "reasons": ["You are not a deployer for Staging (developers). Ask an admin to add you."],
    },
)
CONFLICT = OpenApiExample(
    "Something else under way",
    status_codes=["409"],
    response_only=True,
    value={
        "detail": "Storefront already has deployment #41 rolling out in Staging. Wait for it to finish or cancel it.",
        "reasons": [
            "Storefront already has deployment #41 rolling out in Staging. Wait for it to finish or cancel it."
        ],
    },
)
INVALID = OpenApiExample(
    "Bad input",
    status_codes=["400"],
    response_only=True,
    value={
        "detail": "The request is not valid: see errors.",
        "reasons": ["environment: Object with slug=stagin does not exist."],
        "errors": {"environment": ["Object with slug=stagin does not exist."]},
    },
)
UNAUTHENTICATED = OpenApiExample(
    "No usable token",
    status_codes=["401"],
    response_only=True,
    value={"detail": "API token ci-bot was revoked.", "reasons": ["API token ci-bot was revoked."]},
)
NOT_FOUND = OpenApiExample(
    "Unknown", status_codes=["404"], response_only=True, value={"detail": "Not found.", "reasons": ["Not found."]}
)

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


# operationId → (status, [(link name, target operationId, parameters, request body)]).
LINKS = {
    "createRelease": (
        "201",
        [
            ("GetRelease", "getRelease", {"id": "$response.body#/id"}, None),
            ("RequestDeployment", "requestDeployment", {}, {"release": "$response.body#/id"}),
        ],
    ),
    "requestDeployment": (
        "201",
        [
            ("GetDeployment", "getDeployment", {"id": "$response.body#/id"}, None),
            ("ApproveDeployment", "approveDeployment", {"id": "$response.body#/id"}, None),
            ("RejectDeployment", "rejectDeployment", {"id": "$response.body#/id"}, None),
            ("CancelDeployment", "cancelDeployment", {"id": "$response.body#/id"}, None),
        ],
    ),
    "rollback": ("201", [("GetDeployment", "getDeployment", {"id": "$response.body#/id"}, None)]),
    "startBuild": (
        "201",
        [
            ("GetBuild", "getBuild", {"id": "$response.body#/id"}, None),
            ("AbortBuild", "abortBuild", {"id": "$response.body#/id"}, None),
        ],
    ),
    "createLock": ("201", [("ReleaseLock", "releaseLock", {"id": "$response.body#/id"}, None)]),
    "listServices": (
        "200",
        [
            ("GetService", "getService", {"slug": "$response.body#/0/slug"}, None),
            ("Rollback", "rollback", {"slug": "$response.body#/0/slug"}, None),
        ],
    ),
    "listEnvironments": ("200", [("GetEnvironment", "getEnvironment", {"slug": "$response.body#/0/slug"}, None)]),
    "listReleases": ("200", [("GetRelease", "getRelease", {"id": "$response.body#/results/0/id"}, None)]),
    "listDeployments": (
        "200",
        [
            ("GetDeployment", "getDeployment", {"id": "$response.body#/results/0/id"}, None),
            ("CancelDeployment", "cancelDeployment", {"id": "$response.body#/results/0/id"}, None),
        ],
    ),
    "listBuilds": ("200", [("GetBuild", "getBuild", {"id": "$response.body#/results/0/id"}, None)]),
    "listLocks": ("200", [("ReleaseLock", "releaseLock", {"id": "$response.body#/0/id"}, None)]),
    "listFreezes": ("200", [("EndFreeze", "endFreeze", {"id": "$response.body#/0/id"}, None)]),
    "createFreeze": ("201", [("EndFreeze", "endFreeze", {"id": "$response.body#/id"}, None)]),
}


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
            status, links = found
            response = operation.get("responses", {}).get(status)
            if response is None:
                continue
            response["links"] = {
                name: {
                    "operationId": target,
                    **({"parameters": parameters} if parameters else {}),
                    **({"requestBody": body} if body else {}),
                }
                for name, target, parameters, body in links
            }
    return result


def operation(operation_id: str, summary: str, answers: dict, *, example: tuple | None = None, **more):
    """One endpoint's schema: its id, a summary, its responses (from `responses`) and, for a
    write, one request example given as (name, value); anything else goes to extend_schema."""
    if example is not None:
        name, value = example
        more["examples"] = [OpenApiExample(name, request_only=True, value=value)]
    return extend_schema(operation_id=operation_id, summary=summary, responses=answers, **more)
