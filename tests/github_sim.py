"""A small GitHub Actions runner for tests: runs a workflow's ``run:`` steps with bash, job by
job in ``needs`` order, with the environment GitHub gives them.

What it does as GitHub does: ``env:`` at workflow, job and step level (step wins, and a
job's or workflow's value wins over ``$GITHUB_ENV``), ``$GITHUB_ENV`` lines applied to the
job's later steps, ``$GITHUB_OUTPUT`` lines as ``steps.<id>.outputs``, job ``outputs:``
as ``needs.<job>.outputs``, ``$GITHUB_STEP_SUMMARY``, the default ``GITHUB_*`` variables,
``bash --noprofile --norc -eo pipefail``, one fresh workspace per job. Expressions are
dotted context lookups only (``secrets.X``, ``vars.X``, ``needs.start.outputs.tp``,
``job.status``…); anything else is an error, so a workflow that needs more is noticed.
``uses:`` steps are skipped (their names are recorded), as are steps named in ``skip``.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")


class WorkflowError(Exception):
    pass


def _lookup(path: str, ctx: dict[str, Any]) -> str:
    if not DOTTED.match(path):
        raise WorkflowError(f"expression not supported by the simulation: {path!r}")
    value: Any = ctx
    for part in path.split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    return "" if isinstance(value, dict) else str(value)


def evaluate(text: Any, ctx: dict[str, Any]) -> str:
    return EXPR.sub(lambda m: _lookup(m.group(1), ctx), str(text))


def parse_env_file(text: str) -> dict[str, str]:
    """``KEY=value`` lines (and ``KEY<<EOF`` blocks) as the runner reads them."""
    out: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and "=" not in line.split("<<", 1)[0]:
            key, marker = line.split("<<", 1)
            block: list[str] = []
            i += 1
            while i < len(lines) and lines[i] != marker:
                block.append(lines[i])
                i += 1
            out[key] = "\n".join(block)
        elif "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
        i += 1
    return out


@dataclass
class StepRun:
    job: str
    name: str
    returncode: int
    output: str


@dataclass
class Run:
    workspaces: dict[str, Path] = field(default_factory=dict)
    steps: list[StepRun] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    needs: dict[str, dict[str, Any]] = field(default_factory=dict)


def _order(jobs: dict[str, Any]) -> list[str]:
    done: list[str] = []
    while len(done) < len(jobs):
        ready = [
            name
            for name, job in jobs.items()
            if name not in done and all(n in done for n in _needs(job))
        ]
        if not ready:
            raise WorkflowError("jobs depend on each other in a cycle")
        done.extend(ready)
    return done


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


def run_workflow(
    path: Path,
    root: Path,
    *,
    base_env: dict[str, str],
    secrets: dict[str, str] | None = None,
    variables: dict[str, str] | None = None,
    skip: tuple[str, ...] = (),
    prepare_workspace: Any = None,
) -> Run:
    doc = yaml.safe_load(path.read_text())
    run = Run()
    github = {
        "workflow": doc.get("name", path.name),
        "sha": "0123456789abcdef0123456789abcdef01234567",
        "run_id": "4242",
        "repository": "acme/app",
        "event": {"repository": {"name": "app"}},
    }
    for job_name in _order(doc["jobs"]):
        job = doc["jobs"][job_name]
        workspace = root / job_name
        workspace.mkdir(parents=True)
        if prepare_workspace is not None:
            prepare_workspace(workspace)
        run.workspaces[job_name] = workspace
        ctx: dict[str, Any] = {
            "github": {**github, "job": job_name, "workspace": str(workspace)},
            "secrets": dict(secrets or {}),
            "vars": dict(variables or {}),
            "inputs": {},
            "needs": {n: run.needs[n] for n in _needs(job)},
            "steps": {},
            # Each job is its own check run; the number only has to differ between jobs.
            "job": {"status": "success", "check_run_id": 51725241954 + len(run.workspaces)},
        }
        runner = {
            **base_env,
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKFLOW": github["workflow"],
            "GITHUB_JOB": job_name,
            "GITHUB_SHA": github["sha"],
            "GITHUB_RUN_ID": github["run_id"],
            "GITHUB_REPOSITORY": github["repository"],
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_STEP_SUMMARY": str(workspace.parent / f"{job_name}.summary.md"),
        }
        github_env = workspace.parent / f"{job_name}.env"
        github_env.write_text("")
        workflow_env = {k: evaluate(v, ctx) for k, v in (doc.get("env") or {}).items()}
        job_env = {k: evaluate(v, ctx) for k, v in (job.get("env") or {}).items()}
        failed = False
        for index, step in enumerate(job.get("steps") or []):
            name = step.get("name") or step.get("uses") or f"step {index}"
            if "uses" in step or name in skip:
                run.skipped.append((job_name, name))
                continue
            output_file = workspace.parent / f"{job_name}.{index}.output"
            output_file.write_text("")
            env = {
                **runner,
                **parse_env_file(github_env.read_text()),
                **workflow_env,
                **job_env,
                **{k: evaluate(v, ctx) for k, v in (step.get("env") or {}).items()},
                "GITHUB_ENV": str(github_env),
                "GITHUB_OUTPUT": str(output_file),
            }
            proc = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                env=env, cwd=workspace, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            run.steps.append(StepRun(job_name, name, proc.returncode, proc.stdout + proc.stderr))
            if "id" in step:
                ctx["steps"][step["id"]] = {"outputs": parse_env_file(output_file.read_text())}
            if proc.returncode != 0:
                failed = True
                ctx["job"]["status"] = "failure"
                break
        outputs = {k: evaluate(v, ctx) for k, v in (job.get("outputs") or {}).items()}
        run.needs[job_name] = {"outputs": outputs, "result": "failure" if failed else "success"}
    return run


def script_of(path: Path, job: str, name: str) -> str:
    """The ``run:`` script of the step called ``name`` in ``job``."""
    doc = yaml.safe_load(path.read_text())
    for step in doc["jobs"][job]["steps"]:
        if step.get("name") == name:
            return str(step["run"])
    raise KeyError(f"{job}: no step named {name!r}")
