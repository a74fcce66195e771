"""The API types the sandbox serves, described once: the source of the OpenAPI documents, of strict
field validation and of server-side apply's list semantics.

Each type is written as `"field:type field:type …"`; the field names, their types and their list
and patch markers follow `k8s.io/api` (apps/v1, core/v1, autoscaling/v1, authorization/v1,
authentication/v1) and `k8s.io/apimachinery` meta/v1 at Kubernetes 1.32. Field types:

    string integer boolean number       scalars
    Time IntOrString Quantity           the apimachinery special types (strings / int-or-string)
    any                                 a free-form object: the sandbox does not describe it further
                                        (affinity, security contexts, volume sources, …); every
                                        field under it is accepted and it merges as a whole
    {T}                                 a map of T (labels, annotations, resource lists)
    [T]                                 an atomic list of T (replaced as a whole)
    [T/set]                             a list of scalars merged as a set (finalizers)
    [T/k1+k2]                           an associative list keyed by k1 (and k2), merged item by item
    Name                                another type of this module

A `!` after a field name marks it required; `@retainKeys` after the type adds that patch strategy
and `@atomic` makes a map merge and be owned as a whole.
"""

import re
from dataclasses import dataclass, field

# The OpenAPI package of each type family, and the group/version of its kinds.
META = "io.k8s.apimachinery.pkg.apis.meta.v1"
APPS = "io.k8s.api.apps.v1"
CORE = "io.k8s.api.core.v1"
AUTOSCALING = "io.k8s.api.autoscaling.v1"
AUTHZ = "io.k8s.api.authorization.v1"
AUTHN = "io.k8s.api.authentication.v1"
COORDINATION = "io.k8s.api.coordination.v1"
RBAC = "io.k8s.api.rbac.v1"
BATCH = "io.k8s.api.batch.v1"
POLICY = "io.k8s.api.policy.v1"
AUTOSCALING_V2 = "io.k8s.api.autoscaling.v2"
ISTIO_SECURITY = "io.istio.security.v1"
ISTIO_NETWORKING = "io.istio.networking.v1"
GROUP_VERSIONS = {
    META: "v1",
    APPS: "apps/v1",
    CORE: "v1",
    AUTOSCALING: "autoscaling/v1",
    AUTHZ: "authorization.k8s.io/v1",
    AUTHN: "authentication.k8s.io/v1",
    COORDINATION: "coordination.k8s.io/v1",
    RBAC: "rbac.authorization.k8s.io/v1",
    BATCH: "batch/v1",
    POLICY: "policy/v1",
    AUTOSCALING_V2: "autoscaling/v2",
    ISTIO_SECURITY: "security.istio.io/v1",
    ISTIO_NETWORKING: "networking.istio.io/v1",
}
SPECIAL = {
    "Time": "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
    "MicroTime": "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime",
    "IntOrString": "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
    "Quantity": "io.k8s.apimachinery.pkg.api.resource.Quantity",
}
TYPEMETA = "apiVersion:string kind:string"

# package → {type name: fields}
TYPE_FIELDS: dict[str, dict[str, str]] = {
    # ----------------------------------------------------------- meta/v1
    META: {
        "ObjectMeta": (
            "annotations:{string} creationTimestamp:Time deletionGracePeriodSeconds:integer "
            "deletionTimestamp:Time finalizers:[string/set] generateName:string generation:integer "
            "labels:{string} managedFields:[ManagedFieldsEntry] name:string namespace:string "
            "ownerReferences:[OwnerReference/uid] resourceVersion:string selfLink:string uid:string"
        ),
        "ManagedFieldsEntry": (
            "apiVersion:string fieldsType:string fieldsV1:FieldsV1 manager:string operation:string "
            "subresource:string time:Time"
        ),
        "FieldsV1": "*",
        "OwnerReference": (
            "apiVersion!:string blockOwnerDeletion:boolean controller:boolean kind!:string name!:string uid!:string"
        ),
        "LabelSelector": "matchExpressions:[LabelSelectorRequirement] matchLabels:{string}",
        "LabelSelectorRequirement": "key!:string operator!:string values:[string]",
        "ListMeta": "continue:string remainingItemCount:integer resourceVersion:string selfLink:string",
        "Status": (
            f"{TYPEMETA} code:integer details:StatusDetails message:string metadata:ListMeta reason:string "
            "status:string"
        ),
        "StatusDetails": (
            "causes:[StatusCause] group:string kind:string name:string retryAfterSeconds:integer uid:string"
        ),
        "StatusCause": "field:string message:string reason:string",
        "DeleteOptions": (
            f"{TYPEMETA} dryRun:[string] gracePeriodSeconds:integer "
            "ignoreStoreReadErrorWithClusterBreakingPotential:boolean orphanDependents:boolean "
            "preconditions:Preconditions propagationPolicy:string"
        ),
        "Preconditions": "resourceVersion:string uid:string",
        "Patch": "*",
        "WatchEvent": "object!:any type!:string",
    },
    # ----------------------------------------------------------- apps/v1
    APPS: {
        "Deployment": f"{TYPEMETA} metadata:ObjectMeta spec:DeploymentSpec status:DeploymentStatus",
        "DeploymentSpec": (
            "minReadySeconds:integer paused:boolean progressDeadlineSeconds:integer replicas:integer "
            "revisionHistoryLimit:integer selector!:LabelSelector strategy:DeploymentStrategy@retainKeys "
            "template!:PodTemplateSpec"
        ),
        "DeploymentStrategy": "rollingUpdate:RollingUpdateDeployment type:string",
        "RollingUpdateDeployment": "maxSurge:IntOrString maxUnavailable:IntOrString",
        "DeploymentStatus": (
            "availableReplicas:integer collisionCount:integer conditions:[DeploymentCondition/type] "
            "observedGeneration:integer readyReplicas:integer replicas:integer unavailableReplicas:integer "
            "updatedReplicas:integer"
        ),
        "DeploymentCondition": (
            "lastTransitionTime:Time lastUpdateTime:Time message:string reason:string status!:string type!:string"
        ),
        "ReplicaSet": f"{TYPEMETA} metadata:ObjectMeta spec:ReplicaSetSpec status:ReplicaSetStatus",
        "ReplicaSetSpec": "minReadySeconds:integer replicas:integer selector!:LabelSelector template:PodTemplateSpec",
        "ReplicaSetStatus": (
            "availableReplicas:integer conditions:[ReplicaSetCondition/type] fullyLabeledReplicas:integer "
            "observedGeneration:integer readyReplicas:integer replicas!:integer"
        ),
        "ReplicaSetCondition": "lastTransitionTime:Time message:string reason:string status!:string type!:string",
    },
    # ---------------------------------------------------- autoscaling/v1
    AUTOSCALING: {
        "Scale": f"{TYPEMETA} metadata:ObjectMeta spec:ScaleSpec status:ScaleStatus",
        "ScaleSpec": "replicas:integer",
        "ScaleStatus": "replicas!:integer selector:string",
    },
    # ----------------------------------------------------------- core/v1
    CORE: {
        "Pod": f"{TYPEMETA} metadata:ObjectMeta spec:PodSpec status:PodStatus",
        "PodTemplateSpec": "metadata:ObjectMeta spec:PodSpec",
        "PodSpec": (
            "activeDeadlineSeconds:integer affinity:any automountServiceAccountToken:boolean "
            "containers!:[Container/name] dnsConfig:any dnsPolicy:string enableServiceLinks:boolean "
            "ephemeralContainers:[any/name] hostAliases:[any/ip] hostIPC:boolean hostNetwork:boolean "
            "hostPID:boolean hostUsers:boolean hostname:string imagePullSecrets:[LocalObjectReference/name] "
            "initContainers:[Container/name] nodeName:string nodeSelector:{string}@atomic os:any "
            "overhead:{Quantity} preemptionPolicy:string priority:integer priorityClassName:string "
            "readinessGates:[any] resourceClaims:[any/name] resources:any restartPolicy:string "
            "runtimeClassName:string schedulerName:string schedulingGates:[any/name] securityContext:any "
            "serviceAccount:string serviceAccountName:string setHostnameAsFQDN:boolean "
            "shareProcessNamespace:boolean subdomain:string terminationGracePeriodSeconds:integer "
            "tolerations:[any] topologySpreadConstraints:[any/topologyKey+whenUnsatisfiable] "
            "volumes:[Volume/name]@retainKeys"
        ),
        "Container": (
            "args:[string] command:[string] env:[EnvVar/name] envFrom:[any] image:string imagePullPolicy:string "
            "lifecycle:any livenessProbe:Probe name!:string ports:[ContainerPort/containerPort+protocol] "
            "readinessProbe:Probe resizePolicy:[any] resources:ResourceRequirements restartPolicy:string "
            "securityContext:any startupProbe:Probe stdin:boolean stdinOnce:boolean terminationMessagePath:string "
            "terminationMessagePolicy:string tty:boolean volumeDevices:[any/devicePath] "
            "volumeMounts:[VolumeMount/mountPath] workingDir:string"
        ),
        "ContainerPort": "containerPort!:integer hostIP:string hostPort:integer name:string protocol:string",
        "EnvVar": "name!:string value:string valueFrom:any",
        "VolumeMount": (
            "mountPath!:string mountPropagation:string name!:string readOnly:boolean recursiveReadOnly:string "
            "subPath:string subPathExpr:string"
        ),
        "Volume": (
            "name!:string awsElasticBlockStore:any azureDisk:any azureFile:any cephfs:any cinder:any "
            "configMap:any csi:any downwardAPI:any emptyDir:any ephemeral:any fc:any flexVolume:any flocker:any "
            "gcePersistentDisk:any gitRepo:any glusterfs:any hostPath:any image:any iscsi:any nfs:any "
            "persistentVolumeClaim:any photonPersistentDisk:any portworxVolume:any projected:any quobyte:any "
            "rbd:any scaleIO:any secret:any storageos:any vsphereVolume:any"
        ),
        "Probe": (
            "exec:any failureThreshold:integer grpc:any httpGet:any initialDelaySeconds:integer "
            "periodSeconds:integer successThreshold:integer tcpSocket:any terminationGracePeriodSeconds:integer "
            "timeoutSeconds:integer"
        ),
        "ResourceRequirements": "claims:[any/name] limits:{Quantity} requests:{Quantity}",
        "LocalObjectReference": "name:string",
        "PodStatus": (
            "conditions:[PodCondition/type] containerStatuses:[ContainerStatus] "
            "ephemeralContainerStatuses:[ContainerStatus] hostIP:string hostIPs:[HostIP/ip] "
            "initContainerStatuses:[ContainerStatus] message:string nominatedNodeName:string phase:string "
            "podIP:string podIPs:[PodIP/ip] qosClass:string reason:string resize:string "
            "resourceClaimStatuses:[any/name] startTime:Time"
        ),
        "PodCondition": (
            "lastProbeTime:Time lastTransitionTime:Time message:string reason:string status!:string type!:string"
        ),
        "ContainerStatus": (
            "allocatedResources:{Quantity} allocatedResourcesStatus:[any] containerID:string image!:string "
            "imageID!:string lastState:ContainerState name!:string ready!:boolean resources:ResourceRequirements "
            "restartCount!:integer started:boolean state:ContainerState user:any volumeMounts:[any]"
        ),
        "ContainerState": (
            "running:ContainerStateRunning terminated:ContainerStateTerminated waiting:ContainerStateWaiting"
        ),
        "ContainerStateRunning": "startedAt:Time",
        "ContainerStateTerminated": (
            "containerID:string exitCode!:integer finishedAt:Time message:string reason:string signal:integer "
            "startedAt:Time"
        ),
        "ContainerStateWaiting": "message:string reason:string",
        "HostIP": "ip!:string",
        "PodIP": "ip!:string",
        "Namespace": f"{TYPEMETA} metadata:ObjectMeta spec:NamespaceSpec status:NamespaceStatus",
        "NamespaceSpec": "finalizers:[string]",
        "NamespaceStatus": "conditions:[any/type] phase:string",
        "Event": (
            f"{TYPEMETA} action:string count:integer eventTime:MicroTime firstTimestamp:Time "
            "involvedObject!:ObjectReference lastTimestamp:Time message:string metadata!:ObjectMeta reason:string "
            "related:ObjectReference reportingComponent:string reportingInstance:string series:any "
            "source:EventSource type:string"
        ),
        "EventSource": "component:string host:string",
        "ObjectReference": (
            "apiVersion:string fieldPath:string kind:string name:string namespace:string resourceVersion:string "
            "uid:string"
        ),
        # Kinds the sandbox stores as they come.
        "ServiceAccount": (
            f"{TYPEMETA} automountServiceAccountToken:boolean imagePullSecrets:[LocalObjectReference] "
            "metadata:ObjectMeta secrets:[ObjectReference/name]"
        ),
        "ConfigMap": f"{TYPEMETA} binaryData:{{string}} data:{{string}} immutable:boolean metadata:ObjectMeta",
        "Secret": f"{TYPEMETA} data:{{string}} immutable:boolean metadata:ObjectMeta stringData:{{string}} type:string",
    },
    # -------------------------------------------------- authorization/v1
    AUTHZ: {
        "SelfSubjectAccessReview": (
            f"{TYPEMETA} metadata:ObjectMeta spec!:SelfSubjectAccessReviewSpec status:SubjectAccessReviewStatus"
        ),
        "SelfSubjectAccessReviewSpec": (
            "nonResourceAttributes:NonResourceAttributes resourceAttributes:ResourceAttributes"
        ),
        "ResourceAttributes": (
            "fieldSelector:any group:string labelSelector:any name:string namespace:string resource:string "
            "subresource:string verb:string version:string"
        ),
        "NonResourceAttributes": "path:string verb:string",
        "SubjectAccessReviewStatus": "allowed!:boolean denied:boolean evaluationError:string reason:string",
        "SelfSubjectRulesReview": (
            f"{TYPEMETA} metadata:ObjectMeta spec!:SelfSubjectRulesReviewSpec status:SubjectRulesReviewStatus"
        ),
        "SelfSubjectRulesReviewSpec": "namespace:string",
        "SubjectRulesReviewStatus": (
            "evaluationError:string incomplete!:boolean nonResourceRules!:[NonResourceRule] "
            "resourceRules!:[ResourceRule]"
        ),
        "ResourceRule": "apiGroups:[string] resourceNames:[string] resources:[string] verbs!:[string]",
        "NonResourceRule": "nonResourceURLs:[string] verbs!:[string]",
    },
    # ------------------------------------------------- authentication/v1
    AUTHN: {
        "SelfSubjectReview": f"{TYPEMETA} metadata:ObjectMeta status:SelfSubjectReviewStatus",
        "SelfSubjectReviewStatus": "userInfo:UserInfo",
        "UserInfo": "extra:{[string]} groups:[string] uid:string username:string",
    },
    # --------------------------------------------------- coordination/v1
    COORDINATION: {
        "Lease": f"{TYPEMETA} metadata:ObjectMeta spec:LeaseSpec",
        "LeaseSpec": (
            "acquireTime:MicroTime holderIdentity:string leaseDurationSeconds:integer leaseTransitions:integer "
            "preferredHolder:string renewTime:MicroTime strategy:string"
        ),
    },
    # ----------------------------------------------------------- rbac/v1
    RBAC: {
        "Role": f"{TYPEMETA} metadata:ObjectMeta rules:[PolicyRule]",
        "PolicyRule": (
            "apiGroups:[string] nonResourceURLs:[string] resourceNames:[string] resources:[string] verbs!:[string]"
        ),
        "RoleBinding": f"{TYPEMETA} metadata:ObjectMeta roleRef!:RoleRef subjects:[Subject]",
        "RoleRef": "apiGroup!:string kind!:string name!:string",
        "Subject": "apiGroup:string kind!:string name!:string namespace:string",
    },
}
# The top-level objects (of their package's group/version).
KINDS = set(
    "Status Deployment ReplicaSet Scale Pod Namespace Event ServiceAccount ConfigMap Secret SelfSubjectAccessReview "
    "SelfSubjectRulesReview SelfSubjectReview Lease Role RoleBinding".split()
)
# Kinds whose spec and status the sandbox keeps without describing them (free-form objects): name → package.
OPAQUE_KINDS = {
    "Service": CORE,
    "PersistentVolumeClaim": CORE,
    "Job": BATCH,
    "PodDisruptionBudget": POLICY,
    "HorizontalPodAutoscaler": AUTOSCALING_V2,
    "PeerAuthentication": ISTIO_SECURITY,
    "VirtualService": ISTIO_NETWORKING,
    "DestinationRule": ISTIO_NETWORKING,
}
OPAQUE_FIELDS = f"{TYPEMETA} metadata:ObjectMeta spec:any status:any"
# Every stored kind has a list type (what a list answers and the OpenAPI documents name).
STORED_KINDS = [
    *"Deployment ReplicaSet Pod Namespace Event Lease Role RoleBinding ServiceAccount ConfigMap Secret".split(),
    *OPAQUE_KINDS,
]


def _types() -> dict[str, tuple[str, str | None, str]]:
    """name → (package, group/version/kind or None, fields) of every type."""
    types = {
        name: (package, f"{GROUP_VERSIONS[package]}/{name}" if name in KINDS else None, fields)
        for package, family in TYPE_FIELDS.items()
        for name, fields in family.items()
    }
    types.update(
        {name: (package, f"{GROUP_VERSIONS[package]}/{name}", OPAQUE_FIELDS) for name, package in OPAQUE_KINDS.items()}
    )
    for name in STORED_KINDS:
        package, gvk, _ = types[name]
        types[f"{name}List"] = (package, f"{gvk}List", f"{TYPEMETA} items!:[{name}] metadata:ListMeta")
    return types


TYPES = _types()
# Types that merge and are owned as a whole (`+structType=atomic`).
ATOMIC_TYPES = {"LabelSelector"}
_FIELD = re.compile(r"^(?P<name>\w+)(?P<required>!)?:(?P<type>[^@]+)(?:@(?P<strategy>\w+))?$")


@dataclass
class Field:
    """One field: its type expression plus the markers the OpenAPI documents carry."""

    name: str
    type: str
    required: bool = False
    strategy: str = ""  # extra patch strategy, e.g. retainKeys


@dataclass
class Type:
    name: str
    package: str
    gvk: tuple[str, str, str] | None
    fields: dict[str, Field] = field(default_factory=dict)
    free: bool = False  # "*": any object

    @property
    def qualified(self) -> str:
        return f"{self.package}.{self.name}"


def _gvk(text: str | None) -> tuple[str, str, str] | None:
    if not text:
        return None
    parts = text.split("/")
    if len(parts) == 2:
        return ("", parts[0], parts[1])
    return (parts[0], parts[1], parts[2])


def _parse(name: str, package: str, gvk: str | None, spec: str) -> Type:
    result = Type(name, package, _gvk(gvk))
    if spec == "*":
        result.free = True
        return result
    for token in spec.split():
        match = _FIELD.match(token)
        if match is None:
            raise ValueError(f"bad field spec {token!r} in {name}")
        result.fields[match["name"]] = Field(
            match["name"], match["type"], bool(match["required"]), match["strategy"] or ""
        )
    return result


REGISTRY: dict[str, Type] = {name: _parse(name, *spec) for name, spec in TYPES.items()}


# ------------------------------------------------------------------ type expressions
@dataclass(frozen=True)
class ListInfo:
    item: str
    kind: str  # "atomic" | "set" | "map"
    keys: tuple[str, ...] = ()


def list_info(type_expr: str) -> ListInfo | None:
    """`[T/k1+k2]` → ListInfo(T, "map", (k1, k2)); `[T/set]` → set; `[T]` → atomic."""
    if not (type_expr.startswith("[") and type_expr.endswith("]")):
        return None
    inner = type_expr[1:-1]
    item, _, marker = inner.partition("/")
    if not marker:
        return ListInfo(item, "atomic")
    if marker == "set":
        return ListInfo(item, "set")
    return ListInfo(item, "map", tuple(marker.split("+")))


def map_value(type_expr: str) -> str | None:
    """`{T}` → T."""
    if type_expr.startswith("{") and type_expr.endswith("}"):
        return type_expr[1:-1]
    return None


def is_struct(type_expr: str) -> bool:
    return type_expr in REGISTRY and not REGISTRY[type_expr].free


def by_kind(api_version: str, kind: str) -> Type | None:
    """The type of a top-level object (`apps/v1`, `Deployment`)."""
    group, _, version = api_version.rpartition("/")
    for candidate in REGISTRY.values():
        if candidate.gvk == (group, version, kind):
            return candidate
    return None
