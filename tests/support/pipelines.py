"""Reading the pipeline examples in docs/pipelines/ so tests run their steps as written.

- Jenkinsfile: the `sh '''…'''` steps of a stage, and the literal values of `environment {}`.
- GitHub Actions: a job's steps, run with `bash -e` (GitHub's default shell) after `${{ … }}`
  expressions are replaced from a context, as the runner does.
"""

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

DOCS = Path(__file__).resolve().parents[2] / "docs" / "pipelines"
EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


def jenkins_stage_scripts(stage: str, path: Path = DOCS / "Jenkinsfile") -> list[str]:
    """The `sh '''…'''` scripts of one stage, in order."""
    text = path.read_text()
    start = text.index(f"stage('{stage}')")
    following = text.find("stage('", start + 1)
    body = text[start : following if following != -1 else len(text)]
    return [script.strip("\n") for script in re.findall(r"sh '''(.*?)'''", body, re.S)]


def jenkins_environment(path: Path = DOCS / "Jenkinsfile") -> dict[str, str]:
    """`NAME = 'literal'` entries of the pipeline's environment block (credentials() left out)."""
    block = re.search(r"environment \{(.*?)\}", path.read_text(), re.S).group(1)
    return dict(re.findall(r"^\s*(\w+) = '([^']*)'", block, re.M))


@dataclass
class StepRun:
    name: str
    returncode: int
    output: str


def substitute(text: str, context: dict) -> str:
    def value(match):
        expression = match.group(1)
        if expression not in context:
            raise KeyError(f"the test gives no value for ${{{{ {expression} }}}}")
        return str(context[expression])

    return EXPRESSION.sub(value, text)


def run_actions_job(job_name: str, context: dict, *, path: Path, skip: set[str], env: dict) -> list[StepRun]:
    """Run the `run:` steps of `job_name` in order, stopping at the first failure.

    `uses:` steps (actions from the marketplace) and the steps named in `skip` are not run.
    """
    job = yaml.safe_load(path.read_text())["jobs"][job_name]
    job_env = {name: substitute(str(value), context) for name, value in (job.get("env") or {}).items()}
    runs = []
    for step in job["steps"]:
        if "uses" in step or step.get("name") in skip:
            continue
        script = substitute(step["run"], context)
        timeout = 60 * float(step.get("timeout-minutes", job.get("timeout-minutes", 360)))
        done = subprocess.run(
            ["bash", "-e", "-c", script],
            env={**os.environ, **env, **job_env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        runs.append(StepRun(step.get("name", script), done.returncode, done.stdout + done.stderr))
        if done.returncode:
            break
    return runs


def actions_step(job_name: str, step_name: str, path: Path) -> dict:
    job = yaml.safe_load(path.read_text())["jobs"][job_name]
    return next(step for step in job["steps"] if step.get("name") == step_name)
