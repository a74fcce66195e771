"""The fake Jenkins' state file (`--state FILE`, a `sandbox.state.Journal`): created jobs, the
queue with its ids, every build with its number, fields and console log.

A sandbox started on an existing file has the same queue ids, build numbers and logs; waiting
queue items wait out the rest of their quiet period and builds that were running resume where
they were (model.Build.step), with the "Resuming build … after Jenkins restart" line a durable
pipeline prints.
"""

from sandbox.state import StateFile

from .model import Build, JobConfig, QueueItem


class JenkinsState(StateFile):
    format = "pampam-sandbox-jenkins/1"
    what = "Jenkins"

    def restore(self, jenkins, snapshot: dict) -> None:
        jenkins.next_queue_id = snapshot["next_queue_id"]
        for job in snapshot["jobs"]:
            record = jenkins._add_job(job["name"], job["folder"])
            record.next_number = job["next_number"]
            for raw in job["builds"]:
                self._put_build(jenkins, raw)
        for raw in snapshot["queue"]:
            self._put_item(jenkins, raw)

    def replay(self, jenkins, record: dict) -> None:
        op = record["op"]
        if op == "job":
            jenkins._add_job(record["name"], record["folder"])
        elif op == "delete_job":
            for name in [n for n in jenkins.jobs if n == record["name"] or n.startswith(record["name"] + "/")]:
                del jenkins.jobs[name]
        elif op == "queue":
            self._put_item(jenkins, record["item"])
        elif op == "build":
            self._put_build(jenkins, record["build"])
        elif op == "log":
            build = jenkins.get_build(record["job"], record["number"])
            if build is not None:
                build.log.extend(record["text"].encode())

    @staticmethod
    def _put_build(jenkins, raw: dict) -> None:
        raw = dict(raw)
        log = raw.pop("log", "")
        config = JobConfig(**raw.pop("config"))
        record = jenkins.jobs.get(raw["job"]) or jenkins._add_job(raw["job"])
        existing = record.builds.get(raw["number"])
        build = Build(**raw, config=config)
        build.log = existing.log if existing is not None else bytearray(log.encode())
        if build.aborted_by and build.building:
            build.abort.set()  # it was being stopped
        record.builds[build.number] = build
        record.next_number = max(record.next_number, build.number + 1)

    @staticmethod
    def _put_item(jenkins, raw: dict) -> None:
        raw = dict(raw)
        ref = raw.pop("build")
        item = QueueItem(**raw)
        if ref is not None:
            item.build = jenkins.get_build(*ref)
        jenkins.queue[item.id] = item
        jenkins.next_queue_id = max(jenkins.next_queue_id, item.id + 1)

    def snapshot(self, jenkins) -> None:
        with jenkins.lock:  # the file holds one moment of the server, not a mix of two
            super().snapshot(jenkins)

    def snapshot_of(self, jenkins) -> dict:
        jobs = [
            {
                "name": r.name,
                "folder": r.folder,
                "next_number": r.next_number,
                "builds": [b.record(with_log=True) for b in r.builds.values()],
            }
            for r in jenkins.jobs.values()
        ]
        return {
            "next_queue_id": jenkins.next_queue_id,
            "jobs": jobs,
            "queue": [q.record() for q in jenkins.queue.values()],
        }
