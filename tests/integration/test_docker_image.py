"""The Dockerfiles as users build them: hadolint clean (offline), no parser directive that
makes every build pull a frontend image, a non-root user, and an entrypoint that leaves the
traced command's environment as the user gave it. Docker itself is not available to the
tests: the entrypoint is run here as the image runs it, with the image's own settings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_compose import dockerfile_instructions
from tests.tracehelpers import REPO, load_spans

DOCKERFILES = [REPO / "Dockerfile", REPO / "examples" / "docker" / "Dockerfile.build-traced"]
BIN = Path(sys.executable).parent


def _hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "hadolint"), str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean_and_no_frontend_pull(path: Path) -> None:
    res = _hadolint(path)
    assert res.returncode == 0, res.stdout + res.stderr
    first = path.read_text().splitlines()[0]
    assert not re.match(r"#\s*syntax\s*=", first, re.I), first


def test_hadolint_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text((REPO / "Dockerfile").read_text().replace("USER 10001\n", "RUN apt-get update && apt-get install -y curl\n"))
    res = _hadolint(bad)
    assert res.returncode != 0 and "DL3008" in res.stdout, res.stdout


def test_image_sets_no_environment_and_runs_unprivileged() -> None:
    instructions = dockerfile_instructions(REPO / "Dockerfile")
    assert [i for i in instructions if i[0] in ("ENV", "ARG")] == []
    users = [args for word, args in instructions if word == "USER"]
    assert users and users[-1] not in ("0", "root")
    assert "SYS_PTRACE" in (REPO / "Dockerfile").read_text() and "SYS_PTRACE" in (REPO / "README.md").read_text()


def _entrypoint() -> list[str]:
    (args,) = [a for word, a in dockerfile_instructions(REPO / "Dockerfile") if word == "ENTRYPOINT"]
    return json.loads(args)


def _user_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # What `docker run -e ...` gives the container (the venv's python3 stands in for the
    # image's, where sysspan is installed).
    return {"PATH": os.pathsep.join([str(BIN), "/usr/bin", "/bin"]), "HOME": str(tmp_path), "LANG": "C.UTF-8", "APP_MODE": "test", **extra}


def test_traced_command_gets_the_users_environment(tmp_path: Path) -> None:
    entrypoint = _entrypoint()
    assert entrypoint[-1] == "--"
    user = _user_env(tmp_path, TRACEPARENT="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    show = ["python3", "-c", "import json, os; print(json.dumps(dict(os.environ)))"]
    res = subprocess.run([*entrypoint, *show], env=user, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    child = json.loads(res.stdout)
    (run,) = [s for p in (tmp_path / "sysspan-traces").glob("*.jsonl") for s in load_spans(p) if s.is_run]
    # What sysspan itself gives every traced command (README): TRACEPARENT pointing at its
    # run span and the decision ring. Nothing else may differ.
    assert child.pop("TRACEPARENT") == f"00-{run.trace_id}-{run.span_id}-01"
    channel = {k for k in child if k.startswith("SYSSPAN_DECISION_")}
    assert channel == {"SYSSPAN_DECISION_RING"}
    user.pop("TRACEPARENT")
    assert {k: v for k, v in child.items() if k not in channel} == user


def _writes(cwd: Path, env: dict[str, str]) -> int:
    """``write`` calls of a 500-line print loop to a pipe, under the image's entrypoint."""
    cwd.mkdir()
    loop = ["python3", "-c", "for i in range(500):\n    print(i)"]
    res = subprocess.run([*_entrypoint(), *loop], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 500, res.stderr
    spans = [s for p in (cwd / "sysspan-traces").glob("*.jsonl") for s in load_spans(p)]
    return sum(1 for s in spans if s.attrs.get("syscall.name") == "write")


def test_print_loop_behaves_as_without_the_image(tmp_path: Path) -> None:
    """A 500-line print loop to a pipe: Python buffers it, so a handful of writes, as it
    would outside the image. (With PYTHONUNBUFFERED in the container's environment, as the
    image once had, it made one write per line: that is what this tells apart.)"""
    buffered = _writes(tmp_path / "image", _user_env(tmp_path))
    assert 1 <= buffered <= 5, buffered
    unbuffered = _writes(tmp_path / "unbuffered", _user_env(tmp_path, PYTHONUNBUFFERED="1"))
    assert unbuffered >= 500, unbuffered
