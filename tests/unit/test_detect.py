"""Resource detection: host, CI systems, container id from /proc fixtures, AWS Lambda."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

import pytest

import sysspan
from sysspan.propagation import detect
from sysspan.propagation.detect import (
    container_id_from_cgroup,
    container_id_from_mountinfo,
    detect_ci,
    detect_container_id,
    detect_lambda,
    detect_resource,
    redact_url,
)

CID = "a3f1c2d4e5b6978812345678901234567890abcdefabcdefabcdef0123456789"
CID2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"


def _proc(tmp_path: Path, cgroup: str | None = None, mountinfo: str | None = None) -> str:
    self_dir = tmp_path / "proc" / "self"
    self_dir.mkdir(parents=True)
    if cgroup is not None:
        (self_dir / "cgroup").write_text(cgroup)
    if mountinfo is not None:
        (self_dir / "mountinfo").write_text(mountinfo)
    return str(tmp_path / "proc")


# -- host -------------------------------------------------------------------------------------


def test_host_and_sdk_attributes_always_present(tmp_path: Path) -> None:
    attrs = detect_resource({}, proc_root=_proc(tmp_path))
    assert attrs["host.name"] == socket.gethostname()
    assert attrs["os.type"] == "linux"
    assert platform.uname().release in str(attrs["os.description"])
    assert attrs["telemetry.sdk.name"] == "sysspan"
    assert attrs["telemetry.sdk.language"] == "python"
    assert attrs["telemetry.sdk.version"] == sysspan.__version__
    assert attrs["host.arch"] in (
        "amd64",
        "arm64",
        "arm32",
        "x86",
        "ppc64",
        "ppc32",
        "s390x",
        "ia64",
    )
    assert not any(k.startswith(("cicd.", "vcs.", "cloud.", "faas.", "container.")) for k in attrs)


@pytest.mark.parametrize(
    ("machine", "arch"),
    [
        ("x86_64", "amd64"),
        ("aarch64", "arm64"),
        ("armv7l", "arm32"),
        ("i686", "x86"),
        ("ppc64le", "ppc64"),
        ("s390x", "s390x"),
        ("riscv64", "riscv64"),
    ],
)
def test_host_arch_mapping(monkeypatch: pytest.MonkeyPatch, machine: str, arch: str) -> None:
    real = os.uname()
    fake = os.uname_result((real.sysname, real.nodename, real.release, real.version, machine))
    monkeypatch.setattr(detect.os, "uname", lambda: fake)
    assert detect.host_attributes()["host.arch"] == arch


# -- CI ---------------------------------------------------------------------------------------

GITHUB_PUSH = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_WORKFLOW": "Build and Test",
    "GITHUB_RUN_ID": "9753949763",
    "GITHUB_RUN_ATTEMPT": "2",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "open-telemetry/semantic-conventions",
    "GITHUB_REPOSITORY_OWNER": "open-telemetry",
    "GITHUB_JOB": "lint",
    "GITHUB_REF": "refs/heads/main",
    "GITHUB_REF_NAME": "main",
    "GITHUB_REF_TYPE": "branch",
    "GITHUB_HEAD_REF": "",
    "GITHUB_BASE_REF": "",
    "GITHUB_SHA": "9d59409acf479dfa0df1aa568182e43e43df8bbe",
    "RUNNER_NAME": "GitHub Actions 12",
}


def test_github_actions_push() -> None:
    assert detect_ci(GITHUB_PUSH) == {
        "vcs.provider.name": "github",
        "cicd.pipeline.name": "Build and Test",
        "cicd.pipeline.run.id": "9753949763",
        "cicd.pipeline.run.url.full": (
            "https://github.com/open-telemetry/semantic-conventions/actions/runs/9753949763/attempts/2"
        ),
        "cicd.pipeline.task.name": "lint",
        "vcs.repository.url.full": "https://github.com/open-telemetry/semantic-conventions",
        "vcs.owner.name": "open-telemetry",
        "vcs.repository.name": "semantic-conventions",
        "vcs.ref.head.name": "main",
        "vcs.ref.head.type": "branch",
        "vcs.ref.head.revision": "9d59409acf479dfa0df1aa568182e43e43df8bbe",
        "cicd.worker.name": "GitHub Actions 12",
    }


def test_github_actions_pull_request() -> None:
    env = {
        **GITHUB_PUSH,
        "GITHUB_REF": "refs/pull/1075/merge",
        "GITHUB_REF_NAME": "1075/merge",
        "GITHUB_HEAD_REF": "my-feature-branch",
        "GITHUB_BASE_REF": "main",
    }
    attrs = detect_ci(env)
    assert attrs["vcs.ref.head.name"] == "my-feature-branch"
    assert attrs["vcs.ref.base.name"] == "main"
    assert attrs["vcs.change.id"] == "1075"


def test_github_actions_only_present_variables() -> None:
    attrs = detect_ci({"GITHUB_ACTIONS": "true", "GITHUB_SHA": "abc"})
    assert attrs == {"vcs.provider.name": "github", "vcs.ref.head.revision": "abc"}


def test_gitlab_ci() -> None:
    env = {
        "GITLAB_CI": "true",
        "CI_PROJECT_PATH": "my-org/my-project",
        "CI_PROJECT_NAME": "my-project",
        "CI_PROJECT_NAMESPACE": "my-org",
        "CI_PIPELINE_ID": "120912",
        "CI_PIPELINE_URL": "https://gitlab.com/my-org/my-project/-/pipelines/120912",
        "CI_JOB_NAME": "go-test",
        "CI_JOB_ID": "12097",
        "CI_JOB_URL": "https://gitlab.com/my-org/my-project/-/jobs/12097",
        "CI_PROJECT_URL": "https://gitlab.com/my-org/my-project",
        "CI_COMMIT_SHA": "1ecfd275763eff1d6b4844ea3168962458c9f27a",
        "CI_COMMIT_REF_NAME": "v1.2.0",
        "CI_COMMIT_TAG": "v1.2.0",
        "CI_RUNNER_ID": "42",
        "CI_RUNNER_DESCRIPTION": "shared-runner-1",
    }
    assert detect_ci(env) == {
        "vcs.provider.name": "gitlab",
        "cicd.pipeline.name": "my-org/my-project",
        "cicd.pipeline.run.id": "120912",
        "cicd.pipeline.run.url.full": "https://gitlab.com/my-org/my-project/-/pipelines/120912",
        "cicd.pipeline.task.name": "go-test",
        "cicd.pipeline.task.run.id": "12097",
        "cicd.pipeline.task.run.url.full": "https://gitlab.com/my-org/my-project/-/jobs/12097",
        "vcs.repository.url.full": "https://gitlab.com/my-org/my-project",
        "vcs.repository.name": "my-project",
        "vcs.owner.name": "my-org",
        "vcs.ref.head.name": "v1.2.0",
        "vcs.ref.head.type": "tag",
        "vcs.ref.head.revision": "1ecfd275763eff1d6b4844ea3168962458c9f27a",
        "cicd.worker.name": "shared-runner-1",
        "cicd.worker.id": "42",
    }


def test_gitlab_merge_request_pipeline() -> None:
    env = {
        "GITLAB_CI": "true",
        "CI_PIPELINE_NAME": "MR pipeline",
        "CI_COMMIT_REF_NAME": "refs/merge-requests/7/head",
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_MERGE_REQUEST_IID": "7",
    }
    attrs = detect_ci(env)
    assert attrs["cicd.pipeline.name"] == "MR pipeline"
    assert attrs["vcs.ref.head.name"] == "feature"
    assert attrs["vcs.ref.head.type"] == "branch"
    assert attrs["vcs.ref.base.name"] == "main"
    assert attrs["vcs.change.id"] == "7"


def test_jenkins() -> None:
    env = {
        "JENKINS_URL": "https://ci.example.com/",
        "JOB_NAME": "folder/deploy_to_environment",
        "BUILD_ID": "311",
        "BUILD_NUMBER": "311",
        "BUILD_URL": "https://ci.example.com/job/folder/job/deploy_to_environment/311/",
        "GIT_URL": "https://deploy:s3cr3t@git.example.com/org/repo.git",
        "GIT_COMMIT": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c",
        "GIT_BRANCH": "origin/release/2.x",
        "NODE_NAME": "agent-7",
        "STAGE_NAME": "Deploy",
    }
    assert detect_ci(env) == {
        "cicd.pipeline.name": "folder/deploy_to_environment",
        "cicd.pipeline.run.id": "311",
        "cicd.pipeline.run.url.full": "https://ci.example.com/job/folder/job/deploy_to_environment/311/",
        "cicd.pipeline.task.name": "Deploy",
        "vcs.repository.url.full": "https://REDACTED:REDACTED@git.example.com/org/repo.git",
        "vcs.ref.head.revision": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c",
        "vcs.ref.head.name": "release/2.x",
        "cicd.worker.name": "agent-7",
    }


def test_jenkins_multibranch_pull_request_and_build_number_fallback() -> None:
    env = {
        "JENKINS_URL": "https://ci.example.com/",
        "BUILD_NUMBER": "12",
        "BRANCH_NAME": "PR-5",
        "CHANGE_BRANCH": "feature/x",
        "CHANGE_ID": "5",
        "CHANGE_TARGET": "main",
        "GIT_BRANCH": "origin/PR-5",
    }
    attrs = detect_ci(env)
    assert attrs["cicd.pipeline.run.id"] == "12"
    assert attrs["vcs.ref.head.name"] == "feature/x"
    assert attrs["vcs.change.id"] == "5"
    assert attrs["vcs.ref.base.name"] == "main"


def test_buildkite() -> None:
    env = {
        "BUILDKITE": "true",
        "BUILDKITE_PIPELINE_SLUG": "my-pipeline",
        "BUILDKITE_BUILD_ID": "f62a1b4d-10f9-4790-bc1c-e2c3a0c80983",
        "BUILDKITE_BUILD_URL": "https://buildkite.com/acme/my-pipeline/builds/1514",
        "BUILDKITE_STEP_KEY": "test",
        "BUILDKITE_LABEL": ":hammer: Tests",
        "BUILDKITE_JOB_ID": "e44f9784-e20e-4b93-a21d-f41fd5869db9",
        "BUILDKITE_REPO": "git@github.com:acme/my-pipeline.git",
        "BUILDKITE_COMMIT": "83a20ec058e2fb00e7fa4558c4c6e81e2dcf253d",
        "BUILDKITE_BRANCH": "main",
        "BUILDKITE_TAG": "",
        "BUILDKITE_PULL_REQUEST": "false",
        "BUILDKITE_AGENT_NAME": "agent-1",
    }
    assert detect_ci(env) == {
        "cicd.pipeline.name": "my-pipeline",
        "cicd.pipeline.run.id": "f62a1b4d-10f9-4790-bc1c-e2c3a0c80983",
        "cicd.pipeline.run.url.full": "https://buildkite.com/acme/my-pipeline/builds/1514",
        "cicd.pipeline.task.name": "test",
        "cicd.pipeline.task.run.id": "e44f9784-e20e-4b93-a21d-f41fd5869db9",
        "cicd.pipeline.task.run.url.full": (
            "https://buildkite.com/acme/my-pipeline/builds/1514#e44f9784-e20e-4b93-a21d-f41fd5869db9"
        ),
        "vcs.repository.url.full": "git@github.com:acme/my-pipeline.git",
        "vcs.ref.head.name": "main",
        "vcs.ref.head.type": "branch",
        "vcs.ref.head.revision": "83a20ec058e2fb00e7fa4558c4c6e81e2dcf253d",
        "cicd.worker.name": "agent-1",
    }


def test_buildkite_label_when_no_step_key_and_pull_request() -> None:
    env = {
        "BUILDKITE": "true",
        "BUILDKITE_LABEL": ":hammer: Tests",
        "BUILDKITE_PULL_REQUEST": "42",
        "BUILDKITE_PULL_REQUEST_BASE_BRANCH": "main",
    }
    attrs = detect_ci(env)
    assert attrs["cicd.pipeline.task.name"] == ":hammer: Tests"
    assert attrs["vcs.change.id"] == "42"
    assert attrs["vcs.ref.base.name"] == "main"


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"GITHUB_ACTIONS": "false"},
        {"GITLAB_CI": ""},
        {"BUILDKITE": "0"},
        {"JENKINS_URL": " "},
        {"CI": "true", "GITHUB_SHA": "abc", "CI_COMMIT_SHA": "abc"},
    ],
)
def test_no_ci(env: dict[str, str]) -> None:
    assert detect_ci(env) == {}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://x-access-token:ghs_abc@github.com/o/r.git",
            "https://REDACTED:REDACTED@github.com/o/r.git",
        ),
        ("https://ghp_token@github.com/o/r", "https://REDACTED@github.com/o/r"),
        ("ssh://git@github.com/o/r.git", "ssh://git@github.com/o/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("https://github.com/o/r", "https://github.com/o/r"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


# -- container --------------------------------------------------------------------------------

CGROUP_V1_DOCKER = f"""12:memory:/docker/{CID}
11:cpu,cpuacct:/docker/{CID}
1:name=systemd:/docker/{CID}
0::/system.slice/containerd.service
"""
CGROUP_V1_K8S = f"""11:devices:/kubepods/besteffort/pod5f2b8a7e-1c5f-4c1b-9e0e-2c1f8a8b7c6d/{CID}
10:memory:/kubepods/besteffort/pod5f2b8a7e-1c5f-4c1b-9e0e-2c1f8a8b7c6d/{CID}
"""
CGROUP_SYSTEMD_DOCKER = f"1:name=systemd:/system.slice/docker-{CID}.scope\n"
CGROUP_K8S_CONTAINERD = (
    "0::/kubepods.slice/kubepods-burstable.slice/"
    f"kubepods-burstable-pod5f2b8a7e_1c5f_4c1b_9e0e_2c1f8a8b7c6d.slice/cri-containerd-{CID}.scope\n"
)
CGROUP_CRIO = f"0::/kubepods.slice/kubepods-pod1.slice/crio-{CID}.scope\n"
CGROUP_PODMAN = (
    f"0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope/container\n"
)
CGROUP_ECS = f"9:perf_event:/ecs/55091c13-b8cf-4801-b527-f4601742204d/{CID}\n"
CGROUP_V2_CONTAINER = "0::/\n"
CGROUP_HOST_V2 = "0::/user.slice/user-1000.slice/session-3.scope\n"
CGROUP_HOST_V1 = """12:pids:/user.slice/user-1000.slice/session-2.scope
11:memory:/user.slice/user-1000.slice/session-2.scope
1:name=systemd:/user.slice/user-1000.slice/session-2.scope
0::/user.slice/user-1000.slice/session-2.scope
"""

MOUNTINFO_DOCKER_V2 = f"""1386 1307 0:145 / / rw,relatime master:509 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/ABC:/var/lib/docker/overlay2/l/DEF,upperdir=/var/lib/docker/overlay2/abc/diff,workdir=/var/lib/docker/overlay2/abc/work
1387 1386 0:148 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1396 1386 259:2 /var/lib/docker/containers/{CID}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
1397 1386 259:2 /var/lib/docker/containers/{CID}/hostname /etc/hostname rw,relatime - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
1398 1386 259:2 /var/lib/docker/containers/{CID}/hosts /etc/hosts rw,relatime - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
"""
MOUNTINFO_PODMAN = f"""1200 1100 0:50 / / rw - overlay overlay rw
1210 1200 0:60 /containers/storage/overlay-containers/{CID}/userdata/hostname /etc/hostname rw,nosuid,nodev,relatime - tmpfs tmpfs rw
"""
# A Docker *host* sees every container's shm mount; that is not "our" container.
MOUNTINFO_DOCKER_HOST = f"""22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
500 22 0:77 / /var/lib/docker/containers/{CID2}/mounts/shm rw,nosuid,nodev,noexec,relatime shared:260 - tmpfs shm rw,size=65536k
"""


@pytest.mark.parametrize(
    "cgroup",
    [
        CGROUP_V1_DOCKER,
        CGROUP_V1_K8S,
        CGROUP_SYSTEMD_DOCKER,
        CGROUP_K8S_CONTAINERD,
        CGROUP_CRIO,
        CGROUP_ECS,
    ],
)
def test_container_id_from_cgroup(tmp_path: Path, cgroup: str) -> None:
    assert detect_container_id(_proc(tmp_path, cgroup=cgroup)) == CID


def test_container_id_from_cgroup_podman_nested_scope() -> None:
    # libpod-<id>.scope/container: the id is not the last path component
    assert container_id_from_cgroup(CGROUP_PODMAN.splitlines()) == CID


@pytest.mark.parametrize("mountinfo", [MOUNTINFO_DOCKER_V2, MOUNTINFO_PODMAN])
def test_container_id_from_mountinfo_on_cgroup_v2(tmp_path: Path, mountinfo: str) -> None:
    root = _proc(tmp_path, cgroup=CGROUP_V2_CONTAINER, mountinfo=mountinfo)
    assert detect_container_id(root) == CID
    attrs = detect_resource({}, proc_root=root)
    assert attrs["container.id"] == CID


def test_mountinfo_trusts_only_the_runtime_etc_files() -> None:
    # a log shipper bind-mounting another container's log before its own /etc/hostname
    shipper = (
        f"900 1386 259:2 /var/lib/docker/containers/{CID2}/{CID2}-json.log /logs/app.log "
        "ro,relatime - ext4 /dev/nvme0n1p2 rw\n" + MOUNTINFO_DOCKER_V2
    )
    assert container_id_from_mountinfo(shipper.splitlines()) == CID


@pytest.mark.parametrize("cgroup", [CGROUP_HOST_V1, CGROUP_HOST_V2])
def test_non_container_host_has_no_container_id(tmp_path: Path, cgroup: str) -> None:
    root = _proc(tmp_path, cgroup=cgroup, mountinfo=MOUNTINFO_DOCKER_HOST)
    assert detect_container_id(root) is None
    assert "container.id" not in detect_resource({}, proc_root=root)


def test_missing_proc_files_mean_no_container(tmp_path: Path) -> None:
    assert detect_container_id(str(tmp_path / "nowhere")) is None


def test_uppercase_or_short_ids_are_not_container_ids() -> None:
    assert container_id_from_cgroup([f"1:cpu:/docker/{CID.upper()}"]) is None
    assert container_id_from_cgroup([f"1:cpu:/docker/{CID[:-1]}"]) is None
    line = f"1 2 0:1 /var/lib/docker/containers/{CID[:-1]}/hostname /etc/hostname rw - ext4 x rw"
    assert container_id_from_mountinfo([line]) is None


# -- Lambda -----------------------------------------------------------------------------------

LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "my-function",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
    "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]8f2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d",
    "AWS_REGION": "eu-west-1",
}


def test_lambda_attributes() -> None:
    assert detect_lambda(LAMBDA_ENV) == {
        "cloud.provider": "aws",
        "cloud.platform": "aws_lambda",
        "cloud.region": "eu-west-1",
        "faas.name": "my-function",
        "faas.version": "$LATEST",
        "faas.instance": "2024/01/01/[$LATEST]8f2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d",
        "faas.max_memory": 134217728,  # 128 MiB in bytes (semconv example value)
    }


def test_lambda_partial_and_bad_memory() -> None:
    attrs = detect_lambda(
        {"AWS_LAMBDA_FUNCTION_NAME": "f", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "lots"}
    )
    assert attrs == {"cloud.provider": "aws", "cloud.platform": "aws_lambda", "faas.name": "f"}


def test_not_lambda() -> None:
    assert detect_lambda({"AWS_REGION": "eu-west-1"}) == {}


def test_detect_resource_combines_everything(tmp_path: Path) -> None:
    env = {**LAMBDA_ENV, "GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "1"}
    attrs = detect_resource(env, proc_root=_proc(tmp_path, cgroup=CGROUP_V1_DOCKER))
    assert attrs["faas.name"] == "my-function"
    assert attrs["cicd.pipeline.run.id"] == "1"
    assert attrs["container.id"] == CID
    assert attrs["telemetry.sdk.name"] == "sysspan"
    assert all(isinstance(v, (str, int, bool)) for v in attrs.values())
