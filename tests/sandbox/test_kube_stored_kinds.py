"""The kinds the sandbox stores without acting on them (Leases, ConfigMaps, Secrets, RBAC, Jobs,
PDBs, HPAs, Istio's resources): discovery, the typed official client, kubectl, strict validation
and the compare-and-swap leader election relies on."""

import base64
from datetime import UTC, datetime

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.sandbox.conftest import api_client


@pytest.fixture
def leases(kube):
    with api_client(kube.url) as api:
        yield client.CoordinationV1Api(api)


def lease(name="portal", holder="pod-a") -> client.V1Lease:
    now = datetime.now(UTC)
    spec = client.V1LeaseSpec(holder_identity=holder, lease_duration_seconds=15, acquire_time=now, renew_time=now)
    return client.V1Lease(metadata=client.V1ObjectMeta(name=name), spec=spec)


def test_the_typed_client_round_trips_a_lease_with_microsecond_times(leases):
    created = leases.create_namespaced_lease("default", lease())
    read = leases.read_namespaced_lease("portal", "default")
    assert read.spec.holder_identity == "pod-a"
    assert read.spec.renew_time == created.spec.renew_time
    assert read.spec.renew_time.microsecond == created.spec.renew_time.microsecond


def test_a_replace_from_a_stale_read_is_a_conflict_and_an_existing_name_already_exists(leases):
    leases.create_namespaced_lease("default", lease())
    first = leases.read_namespaced_lease("portal", "default")
    first.spec.holder_identity = "pod-b"
    leases.replace_namespaced_lease("portal", "default", first)
    first.spec.holder_identity = "pod-c"  # still carries the old resourceVersion
    with pytest.raises(ApiException) as stale:
        leases.replace_namespaced_lease("portal", "default", first)
    assert stale.value.status == 409
    assert "the object has been modified" in stale.value.body
    with pytest.raises(ApiException) as again:
        leases.create_namespaced_lease("default", lease())
    assert again.value.status == 409
    assert "AlreadyExists" in again.value.body
    assert leases.read_namespaced_lease("portal", "default").spec.holder_identity == "pod-b"


def test_discovery_lists_each_group_at_its_version(kubectl):
    resources = kubectl("api-resources", "--no-headers").stdout
    rows = {line.split()[0]: line.split() for line in resources.splitlines()}
    assert "coordination.k8s.io/v1" in rows["leases"]
    assert rows["horizontalpodautoscalers"][1:3] == ["hpa", "autoscaling/v2"]
    assert rows["poddisruptionbudgets"][1:3] == ["pdb", "policy/v1"]
    assert "networking.istio.io/v1" in rows["virtualservices"]


def test_kubectl_creates_a_secret_and_a_configmap_and_reads_them_back(kubectl):
    kubectl("create", "secret", "generic", "pampam", "--from-literal=SECRET_KEY=s3cr3t")
    kubectl("create", "configmap", "settings", "--from-literal=DEBUG=0")
    data = kubectl("get", "secret", "pampam", "-o", "jsonpath={.data.SECRET_KEY} {.type}").stdout.split()
    assert base64.b64decode(data[0]) == b"s3cr3t"
    assert data[1] == "Opaque"
    assert kubectl("get", "cm", "settings", "-o", "jsonpath={.data.DEBUG}").stdout == "0"


def test_string_data_is_stored_as_base64_data(core):
    body = {"metadata": {"name": "s"}, "stringData": {"TOKEN": "abc"}}
    core.create_namespaced_secret("default", body)
    stored = core.read_namespaced_secret("s", "default")
    assert stored.data == {"TOKEN": base64.b64encode(b"abc").decode()}
    assert stored.string_data is None


def test_kubectl_refuses_an_unknown_lease_field_and_stores_nothing(kubectl):
    manifest = "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: x}\nspec: {holder: me}\n"
    refused = kubectl("apply", "-f", "-", stdin=manifest, check=False)
    assert refused.returncode != 0
    assert 'unknown field "spec.holder"' in refused.stderr
    assert "NotFound" in kubectl("get", "lease", "x", check=False).stderr


def test_it_shows_the_lease_holder_in_kubectl_get(kubectl, leases):
    leases.create_namespaced_lease("default", lease(holder="watcher-7d9c_12"))
    header, row = kubectl("get", "leases").stdout.splitlines()
    assert header.split()[:2] == ["NAME", "HOLDER"]
    assert row.split()[:2] == ["portal", "watcher-7d9c_12"]
