"""Seed files: per-job defaults for the fake Jenkins, in YAML or JSON.

    defaults:                 # applies to every job not listed below
      duration: 3             # seconds a build runs
      queue: 0.5              # seconds in the queue
    jobs:
      app-build:
        duration: 2
        log_lines: 5          # extra lines printed by the build stage
        result: SUCCESS       # SUCCESS | FAILURE | ABORTED | UNSTABLE
        tests: {total: 42, failed: 0, passed: 42, skipped: 0}
        artifacts: [dist/app.tar.gz, reports/junit.xml]
        description: Builds the app image
        sh: ['pampam release create app "$VERSION"']   # shell steps after the tests (`sh`)
        env: {PAMPAM_URL: "http://127.0.0.1:8000"}     # their extra environment
      platform/deploy-web: {}  # listed jobs (and their folders) show up in api/json

`seed` may also be a dict with the same shape (handy in tests).
"""

import json
from pathlib import Path

import yaml

from .model import JobConfig

FIELDS = set(JobConfig.__dataclass_fields__)


def load(seed) -> tuple[JobConfig, dict[str, JobConfig]]:
    """Return (defaults, {job full name: config})."""
    data = _read(seed) if seed is not None else {}
    defaults = _config(data.get("defaults") or {}, JobConfig())
    jobs = {name.strip("/"): _config(entry or {}, defaults) for name, entry in (data.get("jobs") or {}).items()}
    return defaults, jobs


def _read(seed) -> dict:
    if isinstance(seed, dict):
        return seed
    text = Path(seed).read_text()
    return json.loads(text) if str(seed).endswith(".json") else yaml.safe_load(text) or {}


def _config(entry: dict, base: JobConfig) -> JobConfig:
    unknown = set(entry) - FIELDS
    if unknown:
        raise ValueError(f"unknown seed job keys: {sorted(unknown)}")
    if "result" in entry:
        entry = {**entry, "result": str(entry["result"]).upper()}
    return base.merged(**entry)
