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

# (OpenAPI package, group/version of its kinds) per type family.
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
SPECIAL = {
    "Time": "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
    "MicroTime": "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime",
    "IntOrString": "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
    "Quantity": "io.k8s.apimachinery.pkg.api.resource.Quantity",
}
TYPEMETA = "apiVersion:string kind:string"

# name: (package, group/version of the kind or None, fields)
TYPES: dict[str, tuple[str, str | None, str]] = {
    # ------------------------------------------------------------------ meta/v1
    "ObjectMeta": (
        META,
        None,
        "annotations:{string} creationTimestamp:Time deletionGracePeriodSeconds:integer deletionTimestamp:Time "
        "finalizers:[string/set] generateName:string generation:integer labels:{string} "
        "managedFields:[ManagedFieldsEntry] name:string namespace:string "
        "ownerReferences:[OwnerReference/uid] resourceVersion:string selfLink:string uid:string",
    ),
    "ManagedFieldsEntry": (
        META,
        None,
        "apiVersion:string fieldsType:string fieldsV1:FieldsV1 manager:string operation:string "
        "subresource:string time:Time",
    ),
    "FieldsV1": (META, None, "*"),
    "OwnerReference": (
        META,
        None,
        "apiVersion!:string blockOwnerDeletion:boolean controller:boolean kind!:string name!:string uid!:string",
    ),
    "LabelSelector": (META, None, "matchExpressions:[LabelSelectorRequirement] matchLabels:{string}"),
    "LabelSelectorRequirement": (META, None, "key!:string operator!:string values:[string]"),
    "ListMeta": (META, None, "continue:string remainingItemCount:integer resourceVersion:string selfLink:string"),
    "Status": (
        META,
        "v1/Status",
        f"{TYPEMETA} code:integer details:StatusDetails message:string metadata:ListMeta reason:string status:string",
    ),
    "StatusDetails": (
        META,
        None,
        "causes:[StatusCause] group:string kind:string name:string retryAfterSeconds:integer uid:string",
    ),
    "StatusCause": (META, None, "field:string message:string reason:string"),
    "DeleteOptions": (
        META,
        None,
        f"{TYPEMETA} dryRun:[string] gracePeriodSeconds:integer "
        "ignoreStoreReadErrorWithClusterBreakingPotential:boolean orphanDependents:boolean "
        "preconditions:Preconditions propagationPolicy:string",
    ),
    "Preconditions": (META, None, "resourceVersion:string uid:string"),
    "Patch": (META, None, "*"),
    "WatchEvent": (META, None, "object!:any type!:string"),
    # ------------------------------------------------------------------ apps/v1
    "Deployment": (
        APPS,
        "apps/v1/Deployment",
        f"{TYPEMETA} metadata:ObjectMeta spec:DeploymentSpec status:DeploymentStatus",
    ),
    "DeploymentList": (APPS, "apps/v1/DeploymentList", f"{TYPEMETA} items!:[Deployment] metadata:ListMeta"),
    "DeploymentSpec": (
        APPS,
        None,
        "minReadySeconds:integer paused:boolean progressDeadlineSeconds:integer replicas:integer "
        "revisionHistoryLimit:integer selector!:LabelSelector strategy:DeploymentStrategy@retainKeys "
        "template!:PodTemplateSpec",
    ),
    "DeploymentStrategy": (APPS, None, "rollingUpdate:RollingUpdateDeployment type:string"),
    "RollingUpdateDeployment": (APPS, None, "maxSurge:IntOrString maxUnavailable:IntOrString"),
    "DeploymentStatus": (
        APPS,
        None,
        "availableReplicas:integer collisionCount:integer conditions:[DeploymentCondition/type] "
        "observedGeneration:integer readyReplicas:integer replicas:integer unavailableReplicas:integer "
        "updatedReplicas:integer",
    ),
    "DeploymentCondition": (
        APPS,
        None,
        "lastTransitionTime:Time lastUpdateTime:Time message:string reason:string status!:string type!:string",
    ),
    "ReplicaSet": (
        APPS,
        "apps/v1/ReplicaSet",
        f"{TYPEMETA} metadata:ObjectMeta spec:ReplicaSetSpec status:ReplicaSetStatus",
    ),
    "ReplicaSetList": (APPS, "apps/v1/ReplicaSetList", f"{TYPEMETA} items!:[ReplicaSet] metadata:ListMeta"),
    "ReplicaSetSpec": (
        APPS,
        None,
        "minReadySeconds:integer replicas:integer selector!:LabelSelector template:PodTemplateSpec",
    ),
    "ReplicaSetStatus": (
        APPS,
        None,
        "availableReplicas:integer conditions:[ReplicaSetCondition/type] fullyLabeledReplicas:integer "
        "observedGeneration:integer readyReplicas:integer replicas!:integer",
    ),
    "ReplicaSetCondition": (
        APPS,
        None,
        "lastTransitionTime:Time message:string reason:string status!:string type!:string",
    ),
    # ----------------------------------------------------------- autoscaling/v1
    "Scale": (AUTOSCALING, "autoscaling/v1/Scale", f"{TYPEMETA} metadata:ObjectMeta spec:ScaleSpec status:ScaleStatus"),
    "ScaleSpec": (AUTOSCALING, None, "replicas:integer"),
    "ScaleStatus": (AUTOSCALING, None, "replicas!:integer selector:string"),
    # ------------------------------------------------------------------ core/v1
    "Pod": (CORE, "v1/Pod", f"{TYPEMETA} metadata:ObjectMeta spec:PodSpec status:PodStatus"),
    "PodList": (CORE, "v1/PodList", f"{TYPEMETA} items!:[Pod] metadata:ListMeta"),
    "PodTemplateSpec": (CORE, None, "metadata:ObjectMeta spec:PodSpec"),
    "PodSpec": (
        CORE,
        None,
        "activeDeadlineSeconds:integer affinity:any automountServiceAccountToken:boolean "
        "containers!:[Container/name] dnsConfig:any dnsPolicy:string enableServiceLinks:boolean "
        "ephemeralContainers:[any/name] hostAliases:[any/ip] hostIPC:boolean hostNetwork:boolean "
        "hostPID:boolean hostUsers:boolean hostname:string imagePullSecrets:[LocalObjectReference/name] "
        "initContainers:[Container/name] nodeName:string nodeSelector:{string}@atomic os:any overhead:{Quantity} "
        "preemptionPolicy:string priority:integer priorityClassName:string readinessGates:[any] "
        "resourceClaims:[any/name] resources:any restartPolicy:string runtimeClassName:string "
        "schedulerName:string schedulingGates:[any/name] securityContext:any serviceAccount:string "
        "serviceAccountName:string setHostnameAsFQDN:boolean shareProcessNamespace:boolean subdomain:string "
        "terminationGracePeriodSeconds:integer tolerations:[any] "
        "topologySpreadConstraints:[any/topologyKey+whenUnsatisfiable] volumes:[Volume/name]@retainKeys",
    ),
    "Container": (
        CORE,
        None,
        "args:[string] command:[string] env:[EnvVar/name] envFrom:[any] image:string imagePullPolicy:string "
        "lifecycle:any livenessProbe:Probe name!:string ports:[ContainerPort/containerPort+protocol] "
        "readinessProbe:Probe resizePolicy:[any] resources:ResourceRequirements restartPolicy:string "
        "securityContext:any startupProbe:Probe stdin:boolean stdinOnce:boolean "
        "terminationMessagePath:string terminationMessagePolicy:string tty:boolean "
        "volumeDevices:[any/devicePath] volumeMounts:[VolumeMount/mountPath] workingDir:string",
    ),
    "ContainerPort": (
        CORE,
        None,
        "containerPort!:integer hostIP:string hostPort:integer name:string protocol:string",
    ),
    "EnvVar": (CORE, None, "name!:string value:string valueFrom:any"),
    "VolumeMount": (
        CORE,
        None,
        "mountPath!:string mountPropagation:string name!:string readOnly:boolean recursiveReadOnly:string "
        "subPath:string subPathExpr:string",
    ),
    "Volume": (
        CORE,
        None,
        "name!:string awsElasticBlockStore:any azureDisk:any azureFile:any cephfs:any cinder:any configMap:any "
        "csi:any downwardAPI:any emptyDir:any ephemeral:any fc:any flexVolume:any flocker:any "
        "gcePersistentDisk:any gitRepo:any glusterfs:any hostPath:any image:any iscsi:any nfs:any "
        "persistentVolumeClaim:any photonPersistentDisk:any portworxVolume:any projected:any quobyte:any "
        "rbd:any scaleIO:any secret:any storageos:any vsphereVolume:any",
    ),
    "Probe": (
        CORE,
        None,
        "exec:any failureThreshold:integer grpc:any httpGet:any initialDelaySeconds:integer periodSeconds:integer "
        "successThreshold:integer tcpSocket:any terminationGracePeriodSeconds:integer timeoutSeconds:integer",
    ),
    "ResourceRequirements": (CORE, None, "claims:[any/name] limits:{Quantity} requests:{Quantity}"),
    "LocalObjectReference": (CORE, None, "name:string"),
    "PodStatus": (
        CORE,
        None,
        "conditions:[PodCondition/type] containerStatuses:[ContainerStatus] "
        "ephemeralContainerStatuses:[ContainerStatus] hostIP:string hostIPs:[HostIP/ip] "
        "initContainerStatuses:[ContainerStatus] message:string nominatedNodeName:string phase:string "
        "podIP:string podIPs:[PodIP/ip] qosClass:string reason:string resize:string "
        "resourceClaimStatuses:[any/name] startTime:Time",
    ),
    "PodCondition": (
        CORE,
        None,
        "lastProbeTime:Time lastTransitionTime:Time message:string reason:string status!:string type!:string",
    ),
    "ContainerStatus": (
        CORE,
        None,
        "allocatedResources:{Quantity} allocatedResourcesStatus:[any] containerID:string image!:string "
        "imageID!:string lastState:ContainerState name!:string ready!:boolean resources:ResourceRequirements "
        "restartCount!:integer started:boolean state:ContainerState user:any volumeMounts:[any]",
    ),
    "ContainerState": (
        CORE,
        None,
        "running:ContainerStateRunning terminated:ContainerStateTerminated waiting:ContainerStateWaiting",
    ),
    "ContainerStateRunning": (CORE, None, "startedAt:Time"),
    "ContainerStateTerminated": (
        CORE,
        None,
        "containerID:string exitCode!:integer finishedAt:Time message:string reason:string signal:integer "
        "startedAt:Time",
    ),
    "ContainerStateWaiting": (CORE, None, "message:string reason:string"),
    "HostIP": (CORE, None, "ip!:string"),
    "PodIP": (CORE, None, "ip!:string"),
    "Namespace": (CORE, "v1/Namespace", f"{TYPEMETA} metadata:ObjectMeta spec:NamespaceSpec status:NamespaceStatus"),
    "NamespaceList": (CORE, "v1/NamespaceList", f"{TYPEMETA} items!:[Namespace] metadata:ListMeta"),
    "NamespaceSpec": (CORE, None, "finalizers:[string]"),
    "NamespaceStatus": (CORE, None, "conditions:[any/type] phase:string"),
    "Event": (
        CORE,
        "v1/Event",
        f"{TYPEMETA} action:string count:integer eventTime:MicroTime firstTimestamp:Time "
        "involvedObject!:ObjectReference lastTimestamp:Time message:string metadata!:ObjectMeta reason:string "
        "related:ObjectReference reportingComponent:string reportingInstance:string series:any "
        "source:EventSource type:string",
    ),
    "EventList": (CORE, "v1/EventList", f"{TYPEMETA} items!:[Event] metadata:ListMeta"),
    "EventSource": (CORE, None, "component:string host:string"),
    "ObjectReference": (
        CORE,
        None,
        "apiVersion:string fieldPath:string kind:string name:string namespace:string resourceVersion:string uid:string",
    ),
    # ---------------------------------------------------------- authorization/v1
    "SelfSubjectAccessReview": (
        AUTHZ,
        "authorization.k8s.io/v1/SelfSubjectAccessReview",
        f"{TYPEMETA} metadata:ObjectMeta spec!:SelfSubjectAccessReviewSpec status:SubjectAccessReviewStatus",
    ),
    "SelfSubjectAccessReviewSpec": (
        AUTHZ,
        None,
        "nonResourceAttributes:NonResourceAttributes resourceAttributes:ResourceAttributes",
    ),
    "ResourceAttributes": (
        AUTHZ,
        None,
        "fieldSelector:any group:string labelSelector:any name:string namespace:string resource:string "
        "subresource:string verb:string version:string",
    ),
    "NonResourceAttributes": (AUTHZ, None, "path:string verb:string"),
    "SubjectAccessReviewStatus": (
        AUTHZ,
        None,
        "allowed!:boolean denied:boolean evaluationError:string reason:string",
    ),
    "SelfSubjectRulesReview": (
        AUTHZ,
        "authorization.k8s.io/v1/SelfSubjectRulesReview",
        f"{TYPEMETA} metadata:ObjectMeta spec!:SelfSubjectRulesReviewSpec status:SubjectRulesReviewStatus",
    ),
    "SelfSubjectRulesReviewSpec": (AUTHZ, None, "namespace:string"),
    "SubjectRulesReviewStatus": (
        AUTHZ,
        None,
        "evaluationError:string incomplete!:boolean nonResourceRules!:[NonResourceRule] resourceRules!:[ResourceRule]",
    ),
    "ResourceRule": (
        AUTHZ,
        None,
        "apiGroups:[string] resourceNames:[string] resources:[string] verbs!:[string]",
    ),
    "NonResourceRule": (AUTHZ, None, "nonResourceURLs:[string] verbs!:[string]"),
    # --------------------------------------------------------- authentication/v1
    "SelfSubjectReview": (
        AUTHN,
        "authentication.k8s.io/v1/SelfSubjectReview",
        f"{TYPEMETA} metadata:ObjectMeta status:SelfSubjectReviewStatus",
    ),
    "SelfSubjectReviewStatus": (AUTHN, None, "userInfo:UserInfo"),
    "UserInfo": (AUTHN, None, "extra:{[string]} groups:[string] uid:string username:string"),
    # ----------------------------------------------------------- coordination/v1
    "Lease": (COORDINATION, "coordination.k8s.io/v1/Lease", f"{TYPEMETA} metadata:ObjectMeta spec:LeaseSpec"),
    "LeaseSpec": (
        COORDINATION,
        None,
        "acquireTime:MicroTime holderIdentity:string leaseDurationSeconds:integer leaseTransitions:integer "
        "preferredHolder:string renewTime:MicroTime strategy:string",
    ),
    # ------------------------------------------------------------------ rbac/v1
    "Role": (RBAC, "rbac.authorization.k8s.io/v1/Role", f"{TYPEMETA} metadata:ObjectMeta rules:[PolicyRule]"),
    "PolicyRule": (
        RBAC,
        None,
        "apiGroups:[string] nonResourceURLs:[string] resourceNames:[string] resources:[string] verbs!:[string]",
    ),
    "RoleBinding": (
        RBAC,
        "rbac.authorization.k8s.io/v1/RoleBinding",
        f"{TYPEMETA} metadata:ObjectMeta roleRef!:RoleRef subjects:[Subject]",
    ),
    "RoleRef": (RBAC, None, "apiGroup!:string kind!:string name!:string"),
    "Subject": (RBAC, None, "apiGroup:string kind!:string name!:string namespace:string"),
    # ------------------------------------------------- core/v1, stored as they come
    "ServiceAccount": (
        CORE,
        "v1/ServiceAccount",
        f"{TYPEMETA} automountServiceAccountToken:boolean imagePullSecrets:[LocalObjectReference] "
        "metadata:ObjectMeta secrets:[ObjectReference/name]",
    ),
    "ConfigMap": (
        CORE,
        "v1/ConfigMap",
        f"{TYPEMETA} binaryData:{{string}} data:{{string}} immutable:boolean metadata:ObjectMeta",
    ),
    "Secret": (
        CORE,
        "v1/Secret",
        f"{TYPEMETA} data:{{string}} immutable:boolean metadata:ObjectMeta stringData:{{string}} type:string",
    ),
}
# Kinds whose spec and status the sandbox keeps without describing them (free-form objects):
# name → (package, group/version/kind).
OPAQUE_KINDS = {
    "Service": (CORE, "v1/Service"),
    "PersistentVolumeClaim": (CORE, "v1/PersistentVolumeClaim"),
    "Job": (BATCH, "batch/v1/Job"),
    "PodDisruptionBudget": (POLICY, "policy/v1/PodDisruptionBudget"),
    "HorizontalPodAutoscaler": (AUTOSCALING_V2, "autoscaling/v2/HorizontalPodAutoscaler"),
    "PeerAuthentication": (ISTIO_SECURITY, "security.istio.io/v1/PeerAuthentication"),
    "VirtualService": (ISTIO_NETWORKING, "networking.istio.io/v1/VirtualService"),
    "DestinationRule": (ISTIO_NETWORKING, "networking.istio.io/v1/DestinationRule"),
}
OPAQUE_FIELDS = f"{TYPEMETA} metadata:ObjectMeta spec:any status:any"
TYPES.update({name: (package, gvk, OPAQUE_FIELDS) for name, (package, gvk) in OPAQUE_KINDS.items()})
# Every stored kind has a list type (what a list answers and the OpenAPI documents name).
for _name in ["Lease", "Role", "RoleBinding", "ServiceAccount", "ConfigMap", "Secret", *OPAQUE_KINDS]:
    _package, _gvk, _ = TYPES[_name]
    TYPES[f"{_name}List"] = (_package, f"{_gvk}List", f"{TYPEMETA} items!:[{_name}] metadata:ListMeta")
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
