"""The cluster's state file (`--state FILE`): every object, the resourceVersion counter and the
kubelet's per-pod clock, kept in a `sandbox.state.Journal`, as etcd keeps a real cluster's.

A sandbox started on an existing file comes back with the same objects (uids, resourceVersions,
generations, revisions) and carries on: a rollout in flight completes. Its watch history starts at
the loaded revision, so a watch from an older one gets 410 Expired and lists again, as after a
real apiserver restart.
"""

from sandbox.state import StateFile


class KubeState(StateFile):
    format = "pampam-sandbox-kube/1"
    what = "cluster"

    def restore(self, cluster, snapshot: dict) -> None:
        cluster.rv = snapshot["rv"]
        for key, obj in snapshot["objects"]:
            cluster.objects[tuple(key)] = obj
        cluster.side = snapshot.get("side") or {}

    def replay(self, cluster, record: dict) -> None:
        op = record["op"]
        if op == "put":
            cluster.objects[tuple(record["key"])] = record["obj"]
        elif op == "delete" and tuple(record["key"]) in cluster.objects:
            del cluster.objects[tuple(record["key"])]
        elif op == "side":
            table = cluster.side.setdefault(record["table"], {})
            if record["value"] is None:
                table.pop(record["key"], None)
            else:
                table[record["key"]] = record["value"]
        if "rv" in record:
            cluster.rv = max(cluster.rv, record["rv"])

    def snapshot_of(self, cluster) -> dict:
        return {
            "rv": cluster.rv,
            "objects": [[list(key), obj] for key, obj in sorted(cluster.objects.items())],
            "side": cluster.side,
        }
