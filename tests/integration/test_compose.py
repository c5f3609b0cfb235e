"""The compose/ stacks, the Dockerfiles and the Grafana dashboards, checked without Docker.

No Docker engine runs where the tests run, so everything that can be validated offline is:
the compose files against the Compose Specification schema, every cross-reference inside a
stack (depends_on, exporter endpoints, the Grafana datasource URL, bind-mounted files), the
Tempo and Collector configs, the dashboards' JSON, and finally that every attribute a
dashboard's TraceQL names is one that sysspan really writes when it traces a real command.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "compose"
SPEC_COPY = REPO / "tests" / "data" / "compose-spec.json"
STACKS = ("jaeger", "tempo", "collector")
COMPOSE_FILES = {name: COMPOSE_DIR / name / "compose.yaml" for name in STACKS}
TEMPO_CONFIG = COMPOSE_DIR / "tempo" / "tempo.yaml"
COLLECTOR_CONFIG = COMPOSE_DIR / "collector" / "otelcol.yaml"
DATASOURCES = COMPOSE_DIR / "tempo" / "grafana" / "provisioning" / "datasources" / "tempo.yaml"
DASHBOARD_PROVIDERS = (
    COMPOSE_DIR / "tempo" / "grafana" / "provisioning" / "dashboards" / "dashboards.yaml"
)
DASHBOARD_DIR = COMPOSE_DIR / "tempo" / "dashboards"
DASHBOARD_FILES = sorted(DASHBOARD_DIR.glob("*.json"))
TEMPO_UID = "sysspan-tempo"

# What the host passes into the traced service, identically in every stack (x-sysspan-env).
PASS_THROUGH = ("TRACEPARENT", "TRACESTATE", "BAGGAGE", "OTEL_RESOURCE_ATTRIBUTES")

# Attributes that only decision spans carry. A trace of a plain command has none of them, so
# they are checked against the decision row of docs/architecture.md §4 instead of a trace.
DECISION_ATTRIBUTES = frozenset(
    {
        "decision.id",
        "decision.category",
        "decision.name",
        "decision.input",
        "decision.result",
        "code.file.path",
        "code.line.number",
    }
)

# --------------------------------------------------------------------------------------
# YAML the way Compose reads it
# --------------------------------------------------------------------------------------


class ComposeLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars, as Compose (Go yaml.v3) reads them.

    PyYAML implements YAML 1.1, where an unquoted ``22:22`` is the base-60 integer 1342 and
    ``on``/``yes`` are booleans; Compose sees the strings. Dropping the 1.1 int, float and
    bool resolvers and adding the 1.2 ones keeps such values strings."""


_BOOL, _INT, _FLOAT = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
ComposeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ComposeLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
ComposeLoader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?[0-9]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
ComposeLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=ComposeLoader)  # noqa: S506 - a SafeLoader subclass


def compose(stack: str) -> dict[str, Any]:
    return load_yaml(COMPOSE_FILES[stack])


def services(stack: str) -> dict[str, dict[str, Any]]:
    return compose(stack)["services"]


def container_ports(service: dict[str, Any]) -> set[int]:
    """Ports the service listens on inside the network: `ports` targets and `expose`."""
    result: set[int] = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            result.add(int(entry["target"]))
        else:
            result.add(int(str(entry).rsplit(":", 1)[-1].split("/")[0]))
    for entry in service.get("expose", []):
        result.add(int(str(entry).split("/")[0]))
    return result


def host_ports(service: dict[str, Any]) -> list[int]:
    result = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            if "published" in entry:
                result.append(int(entry["published"]))
            continue
        parts = str(entry).split("/")[0].split(":")
        if len(parts) >= 2:
            result.append(int(parts[-2]))
    return result


def bind_mounts(stack: str, service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts (short syntax)."""
    base = COMPOSE_FILES[stack].parent
    mounts: dict[str, Path] = {}
    for entry in service.get("volumes", []):
        assert isinstance(entry, str), f"{stack}: use the short volume syntax: {entry!r}"
        source, target = entry.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (base / source).resolve()
    return mounts


def endpoint_host_port(endpoint: str) -> tuple[str, int]:
    parsed = urlsplit(endpoint if "://" in endpoint else f"tcp://{endpoint}")
    assert parsed.hostname and parsed.port, f"no host:port in {endpoint!r}"
    return parsed.hostname, parsed.port


def assert_names_service_port(stack: str, endpoint: str, what: str) -> str:
    host, port = endpoint_host_port(endpoint)
    defined = services(stack)
    assert host in defined, f"{stack}: {what} {endpoint} names no service of the file"
    assert port in container_ports(defined[host]), (
        f"{stack}: {what} {endpoint}: service {host!r} declares no container port {port} "
        f"(it has {sorted(container_ports(defined[host]))})"
    )
    return host


# --------------------------------------------------------------------------------------
# The loader itself
# --------------------------------------------------------------------------------------


def test_loader_keeps_compose_strings_that_yaml_1_1_would_convert() -> None:
    text = "ports:\n  - 22:22\n  - 8080\nflag: on\nyes_no: no\nratio: 0.5\nt: true\n"
    assert yaml.safe_load(text)["ports"][0] == 1342  # the trap: base-60 in YAML 1.1
    loaded = yaml.load(text, Loader=ComposeLoader)  # noqa: S506
    assert loaded == {
        "ports": ["22:22", 8080],
        "flag": "on",
        "yes_no": "no",
        "ratio": 0.5,
        "t": True,
    }


# --------------------------------------------------------------------------------------
# Compose files
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SPEC_COPY.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.mark.parametrize("stack", STACKS)
def test_compose_file_validates_against_compose_spec(
    stack: str, compose_validator: jsonschema.Draft7Validator
) -> None:
    errors = sorted(compose_validator.iter_errors(compose(stack)), key=lambda e: list(e.path))
    assert not errors, "\n".join(
        f"{stack}: {'/'.join(map(str, e.path))}: {e.message}" for e in errors
    )


@pytest.mark.parametrize("stack", STACKS)
def test_compose_file_has_no_version_key_and_a_project_name(stack: str) -> None:
    doc = compose(stack)
    assert "version" not in doc, "the top-level version key is obsolete"
    assert doc.get("name") == f"sysspan-{stack}"


@pytest.mark.parametrize("stack", STACKS)
def test_ports_stay_strings(stack: str) -> None:
    for name, service in services(stack).items():
        for entry in service.get("ports", []):
            assert isinstance(entry, (str, dict)), f"{stack}/{name}: quote port {entry!r}"


@pytest.mark.parametrize("stack", STACKS)
def test_images_are_pinned_to_a_version(stack: str) -> None:
    for name, service in services(stack).items():
        if "image" not in service:
            assert "build" in service, f"{stack}/{name}: neither image nor build"
            continue
        image = service["image"]
        repository, sep, tag = image.rpartition(":")
        assert sep and "/" not in tag, f"{stack}/{name}: image {image!r} has no tag"
        assert tag != "latest", f"{stack}/{name}: image {image!r} uses latest"
        assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{stack}/{name}: {image!r} not x.y.z"
        assert repository


def test_each_backend_image_has_one_version_across_stacks() -> None:
    versions: dict[str, set[str]] = {}
    for stack in STACKS:
        for service in services(stack).values():
            if "image" in service:
                repository, _, tag = service["image"].rpartition(":")
                versions.setdefault(repository, set()).add(tag)
    assert {repo: tags for repo, tags in versions.items() if len(tags) > 1} == {}
    assert set(versions) == {
        "jaegertracing/jaeger",
        "grafana/tempo",
        "grafana/grafana",
        "otel/opentelemetry-collector-contrib",
    }


@pytest.mark.parametrize("stack", STACKS)
def test_depends_on_names_services_of_the_same_file(stack: str) -> None:
    defined = services(stack)
    for name, service in defined.items():
        deps = service.get("depends_on", [])
        for dep in deps if isinstance(deps, list) else deps.keys():
            assert dep in defined, f"{stack}/{name}: depends_on {dep!r} is not defined"
            assert dep != name


@pytest.mark.parametrize("stack", STACKS)
def test_host_ports_are_unique_within_a_stack(stack: str) -> None:
    published = [p for s in services(stack).values() for p in host_ports(s)]
    assert len(published) == len(set(published)), f"{stack}: {sorted(published)}"


@pytest.mark.parametrize("stack", STACKS)
def test_bind_mount_sources_exist_and_named_volumes_are_declared(stack: str) -> None:
    doc = compose(stack)
    declared = set((doc.get("volumes") or {}).keys())
    for name, service in doc["services"].items():
        for path in bind_mounts(stack, service).values():
            assert path.exists(), f"{stack}/{name}: bind mount source {path} does not exist"
            assert path.is_relative_to(REPO), f"{stack}/{name}: {path} is outside the repo"
        for entry in service.get("volumes", []):
            source = entry.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{stack}/{name}: volume {source!r} not declared"


@pytest.mark.parametrize("stack", STACKS)
def test_sysspan_service_builds_the_repo_image_and_exports_to_the_stack(stack: str) -> None:
    defined = services(stack)
    sysspan = defined["sysspan"]
    build = sysspan["build"]
    context = (COMPOSE_FILES[stack].parent / build["context"]).resolve()
    assert context == REPO
    assert build["dockerfile"] == "Dockerfile" and (context / "Dockerfile").is_file()
    assert sysspan["cap_add"] == ["SYS_PTRACE"]
    assert sysspan["entrypoint"][0] == "sysspan" and sysspan["entrypoint"][-1] == "--"
    assert sysspan["command"], "the demo workload"

    env = sysspan["environment"]
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert env["OTEL_SERVICE_NAME"]
    endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert urlsplit(endpoint).scheme == "http"
    host = assert_names_service_port(stack, endpoint, "OTEL_EXPORTER_OTLP_ENDPOINT")
    assert endpoint_host_port(endpoint)[1] == 4318, "http/protobuf goes to the OTLP HTTP port"
    deps = sysspan.get("depends_on", [])
    assert host in deps, f"{stack}: sysspan exports to {host} but does not depend on it"
    expected_host = {"jaeger": "jaeger", "tempo": "tempo", "collector": "otelcol"}[stack]
    assert host == expected_host


def test_jaeger_stack_publishes_otlp_and_ui() -> None:
    jaeger = services("jaeger")["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/jaeger:2.")
    assert {4317, 4318, 16686} <= set(host_ports(jaeger))
    assert services("jaeger")["sysspan"]["depends_on"]["jaeger"]["condition"] == "service_healthy"


# --------------------------------------------------------------------------------------
# One way to pass TRACEPARENT / OTEL_* from the host
# --------------------------------------------------------------------------------------


def test_all_stacks_share_one_env_block_merged_into_sysspan() -> None:
    blocks = {stack: compose(stack)["x-sysspan-env"] for stack in STACKS}
    first = blocks[STACKS[0]]
    for stack, block in blocks.items():
        assert block == first, f"{stack}: x-sysspan-env differs from {STACKS[0]}'s"
    for name in PASS_THROUGH:
        # no value: copied from the host when set there, absent otherwise (never "")
        assert name in first and first[name] is None, name
    assert first["OTEL_SERVICE_NAME"] == "${OTEL_SERVICE_NAME:-sysspan-demo}"
    for stack in STACKS:
        text = COMPOSE_FILES[stack].read_text(encoding="utf-8")
        assert "x-sysspan-env: &sysspan-env" in text and "<<: *sysspan-env" in text
        env = services(stack)["sysspan"]["environment"]
        assert {k: env[k] for k in first} == first, f"{stack}: sysspan does not merge it"
    readme = (COMPOSE_DIR / "README.md").read_text(encoding="utf-8")
    assert "x-sysspan-env" in readme and "TRACEPARENT" in readme
    for url in ("http://localhost:16686", "http://localhost:3000"):
        assert url in readme


# --------------------------------------------------------------------------------------
# Tempo, Collector, Grafana provisioning
# --------------------------------------------------------------------------------------


def mounted_config(stack: str, service_name: str, host_file: Path) -> str:
    """The container path where `host_file` is mounted; the command must name it."""
    service = services(stack)[service_name]
    targets = [t for t, src in bind_mounts(stack, service).items() if src == host_file.resolve()]
    assert targets, f"{stack}/{service_name}: {host_file.name} is not mounted"
    assert any(targets[0] in arg for arg in service["command"]), (
        f"{stack}/{service_name}: command {service['command']} does not load {targets[0]}"
    )
    return targets[0]


def test_tempo_config_binds_receivers_to_all_interfaces_and_stores_locally() -> None:
    config = load_yaml(TEMPO_CONFIG)
    protocols = config["distributor"]["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    assert config["storage"]["trace"]["backend"] == "local"
    assert config["server"]["http_listen_port"] == 3200
    assert config["stream_over_http_enabled"] is True  # the datasource streams
    for removed in ("ingester", "compactor"):  # gone in Tempo 3: it refuses to start
        assert removed not in config


@pytest.mark.parametrize("stack", ["tempo", "collector"])
def test_tempo_service_loads_the_shared_config_and_declares_its_ports(stack: str) -> None:
    mounted_config(stack, "tempo", TEMPO_CONFIG)
    config = load_yaml(TEMPO_CONFIG)
    tempo = services(stack)["tempo"]
    listen = {config["server"]["http_listen_port"]}
    for proto in config["distributor"]["receivers"]["otlp"]["protocols"].values():
        listen.add(endpoint_host_port(proto["endpoint"])[1])
    assert listen == container_ports(tempo)


def test_collector_pipelines_reference_only_defined_components() -> None:
    config = load_yaml(COLLECTOR_CONFIG)
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces"}
    for pipeline_name, pipeline in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            defined = set(config.get(kind) or {})
            for component in pipeline.get(kind, []):
                assert component in defined, f"{pipeline_name}: {kind[:-1]} {component!r}"
    for extension in config["service"].get("extensions", []):
        assert extension in (config.get("extensions") or {})
    traces = pipelines["traces"]
    assert traces["processors"][0] == "memory_limiter", "memory_limiter must come first"
    assert "batch" in traces["processors"]
    assert traces["receivers"] == ["otlp"]


def test_collector_receives_on_all_interfaces_and_fans_out_to_jaeger_and_tempo() -> None:
    config = load_yaml(COLLECTOR_CONFIG)
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    otelcol = services("collector")["otelcol"]
    assert {4317, 4318} <= container_ports(otelcol)
    mounted_config("collector", "otelcol", COLLECTOR_CONFIG)

    targets = set()
    for name in config["service"]["pipelines"]["traces"]["exporters"]:
        exporter = config["exporters"][name]
        assert name.split("/")[0] in ("otlp_grpc", "otlp"), name
        assert exporter["tls"]["insecure"] is True
        host = assert_names_service_port("collector", exporter["endpoint"], f"exporter {name}")
        assert endpoint_host_port(exporter["endpoint"])[1] == 4317
        assert host in otelcol["depends_on"]
        targets.add(host)
    assert targets == {"jaeger", "tempo"}


def grafana_datasources() -> list[dict[str, Any]]:
    return load_yaml(DATASOURCES)["datasources"]


@pytest.mark.parametrize("stack", ["tempo", "collector"])
def test_grafana_provisioning_is_mounted_and_points_at_services_of_the_file(stack: str) -> None:
    grafana = services(stack)["grafana"]
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Admin"
    mounts = bind_mounts(stack, grafana)
    assert mounts["/etc/grafana/provisioning/datasources"] == DATASOURCES.parent.resolve()
    assert mounts["/etc/grafana/provisioning/dashboards"] == DASHBOARD_PROVIDERS.parent.resolve()

    (tempo_ds,) = [ds for ds in grafana_datasources() if ds["type"] == "tempo"]
    assert tempo_ds["uid"] == TEMPO_UID
    assert tempo_ds["url"] == "http://tempo:3200"
    host = assert_names_service_port(stack, tempo_ds["url"], "Grafana datasource url")
    assert host in grafana["depends_on"]

    providers = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert len(providers) == 1 and providers[0]["type"] == "file"
    dashboards_path = providers[0]["options"]["path"]
    assert mounts[dashboards_path] == DASHBOARD_DIR.resolve()

    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dashboards_path + "/")
    assert (DASHBOARD_DIR / home[len(dashboards_path) + 1 :]).is_file()


# --------------------------------------------------------------------------------------
# Dockerfiles
# --------------------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def test_dockerfile_installs_the_project_and_runs_the_workload_under_sysspan() -> None:
    instructions = dockerfile_instructions(REPO / "Dockerfile")
    froms = [args for word, args in instructions if word == "FROM"]
    assert froms == ["python:3.12-slim"]
    assert any(word == "RUN" and re.search(r"pip install( --\S+)* \.( |$)", args) for word, args in instructions)
    (entrypoint,) = [args for word, args in instructions if word == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["python3", "-I", "-u", "-B", "-m", "sysspan", "--"]
    (cmd,) = [args for word, args in instructions if word == "CMD"]
    demo = json.loads(cmd)
    assert isinstance(demo, list) and demo and all(isinstance(a, str) for a in demo)
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "--cap-add SYS_PTRACE" in text and "-e TRACEPARENT" in text
    assert "-e OTEL_EXPORTER_OTLP_ENDPOINT" in text


def test_demo_workload_of_the_image_runs() -> None:
    (cmd,) = [a for w, a in dockerfile_instructions(REPO / "Dockerfile") if w == "CMD"]
    argv = json.loads(cmd)
    assert argv[0] == "python3"
    done = subprocess.run(
        [sys.executable, *argv[1:]], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "/nonexistent" in done.stdout  # the failing open the demo is there to show


def test_dockerignore_lets_in_what_pip_install_needs() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "start from an empty context"
    for needed in ("!pyproject.toml", "!sysspan/"):
        assert needed in lines
    copied = [a for w, a in dockerfile_instructions(REPO / "Dockerfile") if w == "COPY"]
    assert any(a.startswith("sysspan ") for a in copied)


def test_build_traced_example_passes_traceparent_as_build_arg() -> None:
    path = REPO / "examples" / "docker" / "Dockerfile.build-traced"
    instructions = dockerfile_instructions(path)
    arg_at = instructions.index(("ARG", "TRACEPARENT"))
    traced = [i for i, (w, a) in enumerate(instructions) if w == "RUN" and "sysspan -f --" in a]
    assert traced and all(i > arg_at for i in traced), "ARG TRACEPARENT before the traced RUN"
    for word, args in instructions:
        if word == "FROM":
            image = args.split()[0]
            assert image == "scratch" or ":" in image or image in {"sysspan", "build"}
            assert not image.endswith(":latest")
    assert "--build-arg TRACEPARENT" in path.read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------
# Dashboards
# --------------------------------------------------------------------------------------

_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`')
_ATTRIBUTE = re.compile(r"(?<![\w.:$])(span|resource)\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")
_METRICS = re.compile(
    r"\|\s*(rate|count_over_time|sum_over_time|min_over_time|max_over_time|"
    r"avg_over_time|quantile_over_time|histogram_over_time|compare)\s*\("
)


def traceql_attributes(query: str) -> set[tuple[str, str]]:
    """(scope, name) of every span./resource. attribute a TraceQL query names."""
    return set(_ATTRIBUTE.findall(_STRING_LITERAL.sub('""', query)))


def test_traceql_attribute_extraction() -> None:
    query = (
        '{ resource.service.name =~ "$service" && span.file.path = "/etc/span.x" '
        "&& span:duration > 1ms } | rate() by (span:name, span.syscall.name)"
    )
    assert traceql_attributes(query) == {
        ("resource", "service.name"),
        ("span", "file.path"),
        ("span", "syscall.name"),
    }


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in DASHBOARD_FILES}


def all_queries() -> list[str]:
    return [
        target["query"]
        for dashboard in load_dashboards().values()
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def balanced(query: str) -> bool:
    stripped = _STRING_LITERAL.sub('""', query)
    if '"' in stripped.replace('""', ""):
        return False
    depth = {"{": 0, "(": 0}
    closing = {"}": "{", ")": "("}
    for char in stripped:
        if char in depth:
            depth[char] += 1
        elif char in closing:
            depth[closing[char]] -= 1
            if depth[closing[char]] < 0:
                return False
    return all(v == 0 for v in depth.values())


def test_there_are_the_four_dashboards() -> None:
    assert {p.name for p in DASHBOARD_FILES} == {
        "sysspan-syscalls.json",
        "sysspan-errors.json",
        "sysspan-processes.json",
        "sysspan-decisions.json",
    }


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_is_valid_grafana_json(path: Path) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(dashboard["title"], str) and dashboard["title"]
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", dashboard["uid"])
    assert dashboard["uid"] == path.stem
    assert "id" not in dashboard or dashboard["id"] is None, "provisioned: no fixed id"
    assert isinstance(dashboard["schemaVersion"], int)
    assert {"from", "to"} <= set(dashboard["time"])
    variables = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}

    panels = dashboard["panels"]
    assert panels
    ids = [panel["id"] for panel in panels]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids)), ids
    for panel in panels:
        where = f"{path.name} panel {panel['id']} ({panel.get('title')})"
        assert panel["type"] in {"timeseries", "table", "bargauge", "stat", "traces"}, where
        assert panel["title"], where
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        assert panel["datasource"] == {"type": "tempo", "uid": TEMPO_UID}, where
        targets = panel["targets"]
        assert targets, where
        ref_ids = [t["refId"] for t in targets]
        assert len(ref_ids) == len(set(ref_ids)), where
        for target in targets:
            assert target["datasource"]["uid"] == TEMPO_UID, where
            assert target["queryType"] == "traceql", where
            query = target["query"]
            assert query.lstrip().startswith("{") and balanced(query), f"{where}: {query}"
            for var in re.findall(r"\$(\w+)", query):
                assert var in variables, f"{where}: ${var} is not a dashboard variable"
            is_metrics = bool(_METRICS.search(query))
            if panel["type"] in ("timeseries", "bargauge", "stat"):
                assert is_metrics and target.get("metricsQueryType") == "range", where
            else:
                assert not is_metrics and target.get("tableType") == "spans", where


def test_dashboards_use_the_provisioned_datasource_uid() -> None:
    (tempo_ds,) = [ds for ds in grafana_datasources() if ds["type"] == "tempo"]
    assert tempo_ds["uid"] == TEMPO_UID
    uids = {d["uid"] for d in load_dashboards().values()}
    assert len(uids) == len(DASHBOARD_FILES)


def test_dashboards_answer_the_four_questions() -> None:
    queries = all_queries()

    def some(pattern: str) -> bool:
        return any(re.search(pattern, q) for q in queries)

    assert some(r"quantile_over_time\(span:duration.*by \(span\.syscall\.name\)"), "latency"
    assert some(r"by \(span\.error\.type\)"), "errors by error.type"
    assert some(r'span\.sysspan\.span\.role = "process" }.*max_over_time\(span:duration\)'), "slow processes"
    assert some(r"sum_over_time\(span:duration\) by \(span\.decision\.id"), "decision impact"


# --------------------------------------------------------------------------------------
# The attributes the dashboards query are the ones sysspan emits
# --------------------------------------------------------------------------------------


def design_section_4() -> str:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    match = re.search(r"^## 4\..*?(?=^## )", text, flags=re.S | re.M)
    assert match, "docs/architecture.md has no section 4"
    return match.group(0)


def decision_attributes() -> frozenset[str]:
    """The attributes of the decision row of docs/architecture.md §4."""
    (row,) = [line for line in design_section_4().splitlines() if line.startswith("| decision ")]
    key_attributes = row.strip().strip("|").split("|")[-1]
    return frozenset(re.findall(r"`([a-z_.]+)`", key_attributes))


def queried_attributes() -> set[tuple[str, str]]:
    return {attr for query in all_queries() for attr in traceql_attributes(query)}


def test_decision_attribute_list_matches_design() -> None:
    assert decision_attributes() == DECISION_ATTRIBUTES


def test_queried_attributes_are_named_in_design_section_4() -> None:
    section = design_section_4()
    named = set(re.findall(r"`([a-z_][a-z0-9_.]*)`", section))
    named |= {n.rstrip(".*") for n in re.findall(r"`([a-z_.]+\*)`", section)}
    missing = {f"{scope}.{name}" for scope, name in queried_attributes() if name not in named}
    assert not missing, f"dashboards query attributes docs/architecture.md §4 does not name: {missing}"
    assert ("resource", "service.name") in queried_attributes()


def attribute_keys(trace_file: Path) -> tuple[set[str], set[str], list[str]]:
    """Span attribute keys, resource attribute keys and span names in an OTLP/JSON lines file."""
    span_keys: set[str] = set()
    resource_keys: set[str] = set()
    names: list[str] = []
    for line in trace_file.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        request = json.loads(line)
        for resource_spans in request.get("resourceSpans", []):
            for attr in resource_spans.get("resource", {}).get("attributes", []):
                resource_keys.add(attr["key"])
            for scope_spans in resource_spans.get("scopeSpans", []):
                for span in scope_spans.get("spans", []):
                    names.append(span["name"])
                    span_keys.update(attr["key"] for attr in span.get("attributes", []))
    return span_keys, resource_keys, names


@pytest.fixture(scope="module")
def real_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trace file sysspan writes for a real command (cat with a failing open, ls)."""
    workdir = tmp_path_factory.mktemp("compose-trace")
    out = workdir / "trace.jsonl"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "SYSSPAN_")) and k not in ("TRACEPARENT", "TRACESTATE")
    }
    # the checkout's package, whether or not it is installed in this interpreter
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sysspan",
            "--trace-file",
            str(out),
            "-f",
            "--",
            "sh",
            "-c",
            "cat /etc/hostname /nonexistent; ls /",
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"sysspan failed ({done.returncode}):\n{done.stderr}"
    assert out.is_file() and out.stat().st_size > 0, f"no trace written:\n{done.stderr}"
    return out


def test_every_queried_attribute_appears_in_a_real_trace(real_trace: Path) -> None:
    span_keys, resource_keys, names = attribute_keys(real_trace)
    assert {"cat", "ls"} <= set(names) and "openat" in names, sorted(set(names))
    from_decisions = decision_attributes()
    missing = []
    for scope, name in sorted(queried_attributes()):
        if scope == "resource":
            if name not in resource_keys:
                missing.append(f"resource.{name}")
        elif name in from_decisions:
            continue  # decision spans: checked against docs/architecture.md §4 above
        elif name not in span_keys:
            missing.append(f"span.{name}")
    assert not missing, (
        f"dashboards query attributes sysspan did not write: {missing}\n"
        f"span attributes seen: {sorted(span_keys)}\nresource attributes: {sorted(resource_keys)}"
    )


def test_queried_decision_attributes_are_only_decision_ones() -> None:
    from_decisions = decision_attributes()
    queried = {name for scope, name in queried_attributes() if scope == "span"}
    decision_like = {name for name in queried if name.startswith("decision.")}
    assert decision_like <= from_decisions
    assert decision_like, "the decisions dashboard queries decision.* attributes"


@pytest.mark.parametrize(("stack", "backend"), [("tempo", "tempo"), ("collector", "otelcol")])
def test_sysspan_starts_once_its_backend_is_healthy(stack: str, backend: str) -> None:
    """The Tempo and Collector images have no tool to probe themselves with: a probe built
    from the sysspan image checks the backend's readiness URL, and sysspan waits for it."""
    defined = services(stack)
    probe = defined[f"{backend}-ready"]
    assert probe["build"] == defined["sysspan"]["build"]
    test = probe["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python3"]
    url = re.search(r"urlopen\('([^']+)'", test[-1]).group(1)
    assert_names_service_port(stack, url, f"{backend}-ready healthcheck")
    assert urlsplit(url).hostname == backend
    assert defined["sysspan"]["depends_on"][f"{backend}-ready"]["condition"] == "service_healthy"
    if backend == "otelcol":
        config = load_yaml(COLLECTOR_CONFIG)
        assert "health_check" in config["service"]["extensions"]
        assert config["extensions"]["health_check"]["endpoint"] == f"0.0.0.0:{urlsplit(url).port}"
    else:
        assert urlsplit(url).port == 3200 and urlsplit(url).path == "/ready"
