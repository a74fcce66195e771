"""/api/v1/deployments/: list (the filters of /history/, keyset pages), request, detail (with a
long-poll), approve, reject, cancel; rollbacks and the approvals inbox.

Every write is a call into releases.flows, which asks releases.rules: the API has no path of
its own around them. A token acts as its owner, so it cannot approve what its owner could not
approve in the browser; approvals made with a token say so in the timeline.
"""

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from releases import board, flows, preflight, rules
from releases.api import serializers as s
from releases.api.auth import override_problem, scope_problem, token_of
from releases.api.models import APPROVE, DEPLOY
from releases.api.schema import listed, operation, responses
from releases.api.views import Endpoint, KeysetList, body, query
from releases.models import Approval, Deployment, Service

DEPLOYMENTS = Deployment.objects.for_page().select_related("previous_release")
APPROVALS = Prefetch("approvals", queryset=Approval.objects.select_related("user"))


def may(request, deployment) -> dict:
    """The page's buttons: may the caller approve, reject, cancel — with the token's scopes too."""
    user = request.user
    verdicts = {
        "approve": rules.can_decide(user, deployment, Approval.APPROVE),
        "reject": rules.can_decide(user, deployment, Approval.REJECT),
        "cancel": rules.can_cancel(user, deployment),
    }
    for action, scope in (("approve", APPROVE), ("reject", APPROVE), ("cancel", DEPLOY)):
        problem = scope_problem(request, scope)
        if problem:
            verdicts[action].refuse(problem)
    return verdicts


def detail(request, pk, status_code=status.HTTP_200_OK, after_seq=0) -> Response:
    deployment = get_object_or_404(DEPLOYMENTS.prefetch_related(APPROVALS), pk=pk)
    events = list(
        deployment.events.filter(seq__gt=after_seq).select_related("actor").order_by("seq")[: s.TIMELINE_PAGE]
    )
    context = {"request": request, "events": events, "may": may(request, deployment)}
    return Response(s.DeploymentDetailSerializer(deployment, context=context).data, status=status_code)


def refuse_override_without_scope(request, override_reason: str) -> None:
    problem = override_problem(request, override_reason)
    if problem:
        raise exceptions.PermissionDenied(problem)


class DeploymentList(KeysetList, tag="deployments"):
    serializer_class = s.DeploymentSerializer

    @operation(
        "listDeployments",
        "Deployments, newest first, with the filters of /history/ (keyset pages)",
        **listed(s.DeploymentSerializer, s.DeploymentFilter),
    )
    def get(self, request):
        found = DEPLOYMENTS.defer("probe").matching(**query(s.DeploymentFilter, request))
        return self.paged(found)

    @operation(
        "requestDeployment",
        "Ask to deploy a release to an environment",
        responses({201: s.DeploymentDetailSerializer}, 400, 403, 409),
        description=(
            "Needs the deploy scope and the rules of the release page: deployer group, promotion, freezes, "
            "locks, one active deployment per service and environment. `override_reason` (admins, with the "
            "admin scope) passes a freeze or a lock. The deployment starts pending approval, or approved when "
            "the environment needs none."
        ),
        request=s.DeploymentRequestSerializer,
        example=("Deploy a version", {"service": "storefront", "version": "1.4.2", "environment": "staging"}),
    )
    def post(self, request):
        data = body(s.DeploymentRequestSerializer, request)
        refuse_override_without_scope(request, data["override_reason"])
        preflight.refuse_a_first_deploy(request.user, data["release"], data["environment"], data["override_reason"])
        deployment = flows.request_deployment(
            request.user, data["release"], data["environment"], override_reason=data["override_reason"]
        )
        return detail(request, deployment.pk, status.HTTP_201_CREATED)


class DeploymentDetail(Endpoint, tag="deployments"):
    @operation(
        "getDeployment",
        "One deployment with its approvals and timeline; optionally wait for a change",
        responses({200: s.DeploymentDetailSerializer}, 400, 404),
        description=(
            "`after_seq` limits the timeline to newer events (what a client has not seen yet). With "
            "`wait=N` the answer comes as soon as such an event exists, the deployment is final, or N "
            "seconds pass (at most API_LONG_POLL_MAX_SECONDS). A pipeline loops, passing the last seq it "
            "printed, until `is_final`. A `Retry-After` header means the server had no room to wait: "
            "ask again after that many seconds."
        ),
        parameters=[s.WaitQuery],
    )
    def get(self, request, pk):
        # The waiting itself happens around Django, holding no thread: releases/api/longpoll.py.
        data = query(s.WaitQuery, request)
        return detail(request, pk, after_seq=data.get("after_seq", 0))


def _decision_view(decision: str, operation_id: str, summary: str, example: tuple[str, dict]) -> type[APIView]:
    """The endpoint recording `decision` (approve or reject) on a deployment, with a comment."""
    serializer_class = {Approval.APPROVE: s.ApproveSerializer, Approval.REJECT: s.RejectSerializer}[decision]

    class Decision(Endpoint, tag="deployments"):
        write_scope = APPROVE

        @operation(
            operation_id,
            summary,
            responses({200: s.DeploymentDetailSerializer}, 400, 403, 404),
            request=serializer_class,
            example=example,
        )
        def post(self, request, pk):
            deployment = get_object_or_404(Deployment.objects.select_related("environment"), pk=pk)
            data = body(serializer_class, request)
            token = token_of(request)
            flows.decide(request.user, deployment, decision, data["comment"], via=token.via if token else "")
            return detail(request, pk)

    Decision.__name__ = Decision.__qualname__ = f"Deployment{decision.title()}"
    return Decision


DeploymentApprove = _decision_view(
    Approval.APPROVE,
    "approveDeployment",
    "Approve (approve scope; the approver rules of the page, no self-approval)",
    ("Approve", {"comment": "Dashboards are green."}),
)
DeploymentReject = _decision_view(
    Approval.REJECT,
    "rejectDeployment",
    "Reject, saying why (approve scope)",
    ("Reject", {"comment": "Wrong build: tests skipped."}),
)


class DeploymentCancel(Endpoint, tag="deployments"):
    @operation(
        "cancelDeployment",
        "Cancel (the requester or a deployer; a rollout under way is stopped as the environment says)",
        responses({200: s.DeploymentDetailSerializer}, 400, 403, 404, 409),
        request=s.CancelSerializer,
        example=("Cancel", {"reason": "Wrong build, a fix is coming."}),
    )
    def post(self, request, pk):
        deployment = get_object_or_404(Deployment.objects.select_related("environment"), pk=pk)
        data = body(s.CancelSerializer, request)
        flows.cancel(request.user, deployment, data["reason"])
        return detail(request, pk)


class Rollback(Endpoint, tag="deployments"):
    @operation(
        "rollback",
        "Roll a service back to its last good release in an environment",
        responses({201: s.DeploymentDetailSerializer}, 400, 403, 404, 409),
        description=(
            "A new deployment of kind rollback to the release of the newest succeeded deployment there; "
            "no approvals (it restores what ran). A reason is required in production. Refused when there is "
            "nothing to go back to, or (409) while another deployment is under way."
        ),
        request=s.RollbackSerializer,
        example=("Roll back prod", {"environment": "prod", "reason": "5xx after 1.4.2"}),
    )
    def post(self, request, slug):
        service = get_object_or_404(Service, slug=slug)
        data = body(s.RollbackSerializer, request)
        refuse_override_without_scope(request, data["override_reason"])
        deployment = flows.rollback(
            request.user,
            service,
            data["environment"],
            reason=data["reason"].strip(),
            override_reason=data["override_reason"],
        )
        return detail(request, deployment.pk, status.HTTP_201_CREATED)


class Approvals(Endpoint, tag="deployments"):
    @operation(
        "listApprovals",
        "Deployments waiting for the caller's decision (the /approvals/ inbox)",
        responses({200: OpenApiResponse(s.DeploymentSerializer(many=True))}),
    )
    def get(self, request):
        waiting = board.waiting_for(request.user).select_related("previous_release")[:200]
        return Response(s.DeploymentSerializer(waiting, many=True, context={"request": request}).data)
