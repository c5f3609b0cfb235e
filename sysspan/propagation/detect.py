"""Resource attributes the environment reveals: host, CI system, container, AWS Lambda.

Everything is read from the mapping and the ``/proc`` root passed in, so tests (and
``sysspan`` running against a recorded environment) never depend on the machine they run
on. Only variables that are present and non-empty produce attributes; nothing here raises.

Names follow the OpenTelemetry semantic conventions: ``host.*``, ``os.*``,
``telemetry.sdk.*``, ``cicd.pipeline.*`` / ``cicd.worker.*`` and ``vcs.*`` (CI),
``container.id``, ``cloud.*`` / ``faas.*`` (Lambda). Semantic conventions define no
attribute for the CI product itself, so none is invented; ``vcs.provider.name`` is set where
the CI system implies the VCS host (GitHub Actions: ``github``, GitLab CI: ``gitlab``).
URLs have credentials replaced by ``REDACTED`` as ``url.full`` requires.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping

import sysspan

AttrValue = str | int | bool
Resource = dict[str, AttrValue]

# platform.machine() -> semconv host.arch
_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i386": "x86",
    "i486": "x86",
    "i586": "x86",
    "i686": "x86",
    "x86": "x86",
    "ia64": "ia64",
    "ppc": "ppc32",
    "ppc64": "ppc64",
    "ppc64le": "ppc64",
    "s390x": "s390x",
}
_OS_TYPE = {"sunos": "solaris", "os/390": "z_os"}

_HEX64 = r"[0-9a-f]{64}"
# The last path component of a cgroup v1/v2 line: <id>, docker-<id>.scope,
# cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope, containerd-<id>.scope.
# (Patterns, not compiled ones: re compiles them when a path could hold an id, which on a
# host is never.)
_CGROUP_ID = rf"(?:(?:docker|cri-containerd|crio|libpod|containerd)-)?({_HEX64})(?:\.scope)?"
# cgroup v2 has no id in /proc/self/cgroup; the runtime's per-container files show up as
# mount sources: /var/lib/docker/containers/<id>/hostname (Docker),
# .../overlay-containers/<id>/userdata/hostname (Podman / CRI-O).
_MOUNTINFO_ID = rf"/(?:docker/containers|overlay-containers)/({_HEX64})/"
_CONTAINER_FILES = frozenset({"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"})


def _get(env: Mapping[str, str], *names: str) -> str | None:
    """The first of ``names`` that is set to a non-blank value."""
    for name in names:
        value = env.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def redact_url(url: str) -> str:
    """``url`` with user:password replaced by ``REDACTED:REDACTED`` (semconv ``url.full``).
    A bare user name is kept for ``ssh://``/``git://`` (``git@``) but redacted for http(s),
    where it is usually a token. scp-style ``git@host:org/repo`` is returned unchanged."""
    if "://" not in url:
        return url
    from urllib.parse import urlsplit, urlunsplit  # imports ipaddress: only URLs with :// pay

    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if ":" in userinfo:
        userinfo = "REDACTED:REDACTED"
    elif parts.scheme in ("http", "https"):
        userinfo = "REDACTED"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{hostport}"))


def _put(attrs: Resource, key: str, value: str | None) -> None:
    if value:
        attrs[key] = value


# -- host -------------------------------------------------------------------------------------


def host_attributes() -> Resource:
    """``host.name``, ``host.arch``, ``os.type``, ``os.description`` and ``telemetry.sdk.*``."""
    uname = os.uname()  # what platform.uname() and socket.gethostname() read, without importing them
    machine = uname.machine.lower()
    arch = _ARCH.get(machine) or ("arm32" if machine.startswith("arm") else machine)
    system = uname.sysname.lower()
    attrs: Resource = {
        "host.name": uname.nodename,
        "os.type": _OS_TYPE.get(system, system),
        "os.description": " ".join(p for p in (uname.sysname, uname.release, uname.version) if p),
        "telemetry.sdk.name": "sysspan",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": sysspan.__version__,
    }
    if arch:
        attrs["host.arch"] = arch
    return attrs


# -- CI ---------------------------------------------------------------------------------------


def _github(env: Mapping[str, str]) -> Resource:
    attrs: Resource = {"vcs.provider.name": "github"}
    server = (_get(env, "GITHUB_SERVER_URL") or "").rstrip("/")
    repo = _get(env, "GITHUB_REPOSITORY")
    run_id = _get(env, "GITHUB_RUN_ID")
    attempt = _get(env, "GITHUB_RUN_ATTEMPT")
    _put(attrs, "cicd.pipeline.name", _get(env, "GITHUB_WORKFLOW"))
    _put(attrs, "cicd.pipeline.run.id", run_id)
    if server and repo:
        attrs["vcs.repository.url.full"] = redact_url(f"{server}/{repo}")
        if run_id:
            url = f"{server}/{repo}/actions/runs/{run_id}"
            attrs["cicd.pipeline.run.url.full"] = redact_url(
                f"{url}/attempts/{attempt}" if attempt else url
            )
    if repo and "/" in repo:
        owner, _, name = repo.partition("/")
        _put(attrs, "vcs.owner.name", owner)
        _put(attrs, "vcs.repository.name", name)
    _put(attrs, "cicd.pipeline.task.name", _get(env, "GITHUB_JOB"))
    # On pull_request events GITHUB_REF_NAME is "<n>/merge"; the head branch is GITHUB_HEAD_REF.
    _put(attrs, "vcs.ref.head.name", _get(env, "GITHUB_HEAD_REF", "GITHUB_REF_NAME"))
    _put(attrs, "vcs.ref.base.name", _get(env, "GITHUB_BASE_REF"))
    _put(attrs, "vcs.ref.head.revision", _get(env, "GITHUB_SHA"))
    ref_type = _get(env, "GITHUB_REF_TYPE")
    if ref_type in ("branch", "tag"):
        attrs["vcs.ref.head.type"] = ref_type
    match = re.fullmatch(r"refs/pull/(\d+)/(?:merge|head)", _get(env, "GITHUB_REF") or "")
    if match:
        attrs["vcs.change.id"] = match.group(1)
    _put(attrs, "cicd.worker.name", _get(env, "RUNNER_NAME"))
    return attrs


def _gitlab(env: Mapping[str, str]) -> Resource:
    attrs: Resource = {"vcs.provider.name": "gitlab"}
    _put(attrs, "cicd.pipeline.name", _get(env, "CI_PIPELINE_NAME", "CI_PROJECT_PATH"))
    _put(attrs, "cicd.pipeline.run.id", _get(env, "CI_PIPELINE_ID"))
    _put(attrs, "cicd.pipeline.run.url.full", _get(env, "CI_PIPELINE_URL"))
    _put(attrs, "cicd.pipeline.task.name", _get(env, "CI_JOB_NAME"))
    _put(attrs, "cicd.pipeline.task.run.id", _get(env, "CI_JOB_ID"))
    _put(attrs, "cicd.pipeline.task.run.url.full", _get(env, "CI_JOB_URL"))
    _put(attrs, "vcs.repository.url.full", _get(env, "CI_PROJECT_URL"))
    _put(attrs, "vcs.repository.name", _get(env, "CI_PROJECT_NAME"))
    _put(attrs, "vcs.owner.name", _get(env, "CI_PROJECT_NAMESPACE"))
    head = _get(env, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "CI_COMMIT_REF_NAME")
    _put(attrs, "vcs.ref.head.name", head)
    if head:
        attrs["vcs.ref.head.type"] = "tag" if _get(env, "CI_COMMIT_TAG") else "branch"
    _put(attrs, "vcs.ref.base.name", _get(env, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME"))
    _put(attrs, "vcs.ref.head.revision", _get(env, "CI_COMMIT_SHA"))
    _put(attrs, "vcs.change.id", _get(env, "CI_MERGE_REQUEST_IID"))
    _put(attrs, "cicd.worker.name", _get(env, "CI_RUNNER_DESCRIPTION"))
    _put(attrs, "cicd.worker.id", _get(env, "CI_RUNNER_ID"))
    return attrs


def _buildkite(env: Mapping[str, str]) -> Resource:
    attrs: Resource = {}
    build_url = _get(env, "BUILDKITE_BUILD_URL")
    job_id = _get(env, "BUILDKITE_JOB_ID")
    _put(
        attrs, "cicd.pipeline.name", _get(env, "BUILDKITE_PIPELINE_SLUG", "BUILDKITE_PIPELINE_NAME")
    )
    _put(attrs, "cicd.pipeline.run.id", _get(env, "BUILDKITE_BUILD_ID"))
    _put(attrs, "cicd.pipeline.run.url.full", build_url)
    _put(attrs, "cicd.pipeline.task.name", _get(env, "BUILDKITE_STEP_KEY", "BUILDKITE_LABEL"))
    _put(attrs, "cicd.pipeline.task.run.id", job_id)
    if build_url and job_id:
        attrs["cicd.pipeline.task.run.url.full"] = f"{build_url}#{job_id}"
    repo = _get(env, "BUILDKITE_REPO")
    if repo:
        attrs["vcs.repository.url.full"] = redact_url(repo)
    tag = _get(env, "BUILDKITE_TAG")
    head = tag or _get(env, "BUILDKITE_BRANCH")
    _put(attrs, "vcs.ref.head.name", head)
    if head:
        attrs["vcs.ref.head.type"] = "tag" if tag else "branch"
    _put(attrs, "vcs.ref.head.revision", _get(env, "BUILDKITE_COMMIT"))
    pr = _get(env, "BUILDKITE_PULL_REQUEST")
    if pr and pr != "false":
        attrs["vcs.change.id"] = pr
        _put(attrs, "vcs.ref.base.name", _get(env, "BUILDKITE_PULL_REQUEST_BASE_BRANCH"))
    _put(attrs, "cicd.worker.name", _get(env, "BUILDKITE_AGENT_NAME"))
    _put(attrs, "cicd.worker.id", _get(env, "BUILDKITE_AGENT_ID"))
    return attrs


def _jenkins(env: Mapping[str, str]) -> Resource:
    attrs: Resource = {}
    _put(attrs, "cicd.pipeline.name", _get(env, "JOB_NAME"))
    _put(attrs, "cicd.pipeline.run.id", _get(env, "BUILD_ID", "BUILD_NUMBER"))
    build_url = _get(env, "BUILD_URL")
    if build_url:
        attrs["cicd.pipeline.run.url.full"] = redact_url(build_url)
    _put(attrs, "cicd.pipeline.task.name", _get(env, "STAGE_NAME"))
    git_url = _get(env, "GIT_URL")
    if git_url:
        attrs["vcs.repository.url.full"] = redact_url(git_url)
    _put(attrs, "vcs.ref.head.revision", _get(env, "GIT_COMMIT"))
    # Multibranch pipelines set BRANCH_NAME / CHANGE_BRANCH; the Git plugin's GIT_BRANCH
    # carries the remote ("origin/main").
    branch = _get(env, "CHANGE_BRANCH", "BRANCH_NAME")
    if branch is None:
        branch = _get(env, "GIT_BRANCH")
        if branch:
            branch = re.sub(r"^(?:refs/heads/|refs/remotes/)?origin/|^refs/heads/", "", branch)
    _put(attrs, "vcs.ref.head.name", branch)
    _put(attrs, "vcs.change.id", _get(env, "CHANGE_ID"))
    _put(attrs, "vcs.ref.base.name", _get(env, "CHANGE_TARGET"))
    _put(attrs, "cicd.worker.name", _get(env, "NODE_NAME"))
    return attrs


_CI_SYSTEMS: tuple[
    tuple[Callable[[Mapping[str, str]], bool], Callable[[Mapping[str, str]], Resource]], ...
] = (
    (lambda env: env.get("GITHUB_ACTIONS") == "true", _github),
    (lambda env: env.get("GITLAB_CI") == "true", _gitlab),
    (lambda env: env.get("BUILDKITE") == "true", _buildkite),
    (lambda env: bool(_get(env, "JENKINS_URL")), _jenkins),
)


def detect_ci(env: Mapping[str, str]) -> Resource:
    """``cicd.*`` / ``vcs.*`` attributes of the CI system running us (GitHub Actions, GitLab
    CI, Buildkite, Jenkins, checked in that order; the first match wins), else ``{}``."""
    for matches, attributes in _CI_SYSTEMS:
        if matches(env):
            return attributes(env)
    return {}


# -- container --------------------------------------------------------------------------------


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().splitlines()
    except OSError:
        return []


def container_id_from_cgroup(lines: list[str]) -> str | None:
    """The 64-hex container id in ``/proc/self/cgroup`` lines (cgroup v1, or v2 on a host
    whose runtime names the scope after the container), else None."""
    for line in lines:
        path = line.split(":", 2)[-1].strip()
        # right-most matching component: Podman nests ".../libpod-<id>.scope/container"
        for component in reversed(path.split("/")):
            match = re.fullmatch(_CGROUP_ID, component) if len(component) >= 64 else None
            if match:
                return match.group(1)
    return None


def container_id_from_mountinfo(lines: list[str]) -> str | None:
    """The 64-hex container id in ``/proc/self/mountinfo`` (cgroup v2 containers), else None.

    Only the runtime's bind mounts onto ``/etc/hostname``, ``/etc/hosts`` and
    ``/etc/resolv.conf`` are trusted: a Docker *host* also lists
    ``/var/lib/docker/containers/<id>/mounts/shm`` of every container it runs.
    """
    for line in lines:
        fields = line.split()
        if len(fields) < 5 or fields[4] not in _CONTAINER_FILES:
            continue
        match = re.search(_MOUNTINFO_ID, fields[3])
        if match:
            return match.group(1)
    return None


def detect_container_id(proc_root: str = "/proc") -> str | None:
    """``container.id`` of this process from ``{proc_root}/self/cgroup``, then
    ``{proc_root}/self/mountinfo``; None on a host or when neither can be read."""
    return container_id_from_cgroup(
        _read_lines(os.path.join(proc_root, "self", "cgroup"))
    ) or container_id_from_mountinfo(_read_lines(os.path.join(proc_root, "self", "mountinfo")))


# -- AWS Lambda -------------------------------------------------------------------------------


def detect_lambda(env: Mapping[str, str]) -> Resource:
    """``cloud.*`` / ``faas.*`` attributes when running in AWS Lambda
    (``AWS_LAMBDA_FUNCTION_NAME`` set), else ``{}``. ``faas.max_memory`` is in bytes, as
    current semantic conventions define it (``AWS_LAMBDA_FUNCTION_MEMORY_SIZE`` is MiB)."""
    name = _get(env, "AWS_LAMBDA_FUNCTION_NAME")
    if not name:
        return {}
    attrs: Resource = {"cloud.provider": "aws", "cloud.platform": "aws_lambda", "faas.name": name}
    _put(attrs, "cloud.region", _get(env, "AWS_REGION", "AWS_DEFAULT_REGION"))
    _put(attrs, "faas.version", _get(env, "AWS_LAMBDA_FUNCTION_VERSION"))
    _put(attrs, "faas.instance", _get(env, "AWS_LAMBDA_LOG_STREAM_NAME"))
    memory = _get(env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    if memory and memory.isascii() and memory.isdigit():
        attrs["faas.max_memory"] = int(memory) * 1024 * 1024
    return attrs


# -- all --------------------------------------------------------------------------------------


def detect_resource(env: Mapping[str, str], *, proc_root: str = "/proc") -> Resource:
    """Every resource attribute the environment reveals: host, CI, container, Lambda.

    Meant to be merged *under* the user's configuration
    (``{**detect_resource(env), **config.resource_from_env(env, exe)}``), so
    ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_SERVICE_NAME`` win over anything detected.
    """
    attrs = host_attributes()
    attrs.update(detect_ci(env))
    container_id = detect_container_id(proc_root)
    if container_id:
        attrs["container.id"] = container_id
    attrs.update(detect_lambda(env))
    return attrs


def resource_for(
    env: Mapping[str, str], executable_name: str, warnings: list[str] | None = None
) -> Resource:
    """The resource of a run: :func:`detect_resource` under the user's configuration
    (``config.resource_from_env``; ``warnings`` as there)."""
    from sysspan.config import resource_from_env

    attrs = detect_resource(env)
    attrs.update(resource_from_env(env, executable_name, warnings))
    return attrs
