# syntax=docker/dockerfile:1
#
# sysspan image: runs a workload under sysspan so that its system calls become
# OpenTelemetry spans in the caller's trace.
#
# Build (from the repository root):
#   docker build -t sysspan:dev .
#
# Run, joining the caller's trace and exporting over OTLP/HTTP:
#   docker run --rm --cap-add SYS_PTRACE \
#     -e TRACEPARENT -e TRACESTATE -e BAGGAGE \
#     -e OTEL_EXPORTER_OTLP_ENDPOINT -e OTEL_SERVICE_NAME \
#     sysspan:dev                       # traces the demo workload (CMD below)
#   docker run ... sysspan:dev make -j4 # traces your own command instead
#
# `-e NAME` without a value copies NAME from the host when it is set there and leaves it
# unset in the container otherwise (an empty TRACEPARENT would be an invalid traceparent).
# OTEL_EXPORTER_OTLP_ENDPOINT must be reachable from inside the container: use
# http://host.docker.internal:4318 with `--add-host host.docker.internal:host-gateway`, a
# compose service name (see compose/), or `--network host`. With no endpoint, spans go to
# /work/sysspan-traces/*.jsonl inside the container (mount /work to keep them).
#
# The entrypoint is `sysspan --`, so whatever follows the image name is the traced
# command. To pass sysspan options (-f to follow forks, -e trace=%file, -c, ...), replace
# the entrypoint: `docker run --entrypoint sysspan ... sysspan:dev -f -- COMMAND`.
#
# SYS_PTRACE: Docker's default seccomp profile already lets a process trace its own
# children on current kernels; the capability is what older kernels and `-p PID` need.

FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install the project from its own files only (see .dockerignore): the packaging metadata
# first, then the package, so editing tests or docs never invalidates this layer.
WORKDIR /src
COPY pyproject.toml README* LICENSE* ./
COPY sysspan ./sysspan
RUN pip install . \
    && rm -rf /src \
    && sysspan --help > /dev/null

WORKDIR /work

ENTRYPOINT ["sysspan", "--"]
# Demo workload: reads a file, fails to open another (an ENOENT error span) and lists a
# directory, all in one process so it is fully traced without -f.
CMD ["python3", "-c", "import os\nfor p in ('/etc/hostname', '/nonexistent'):\n    try:\n        open(p).read()\n    except OSError as e:\n        print(p, e.strerror)\nprint(len(os.listdir('/')), 'entries in /')"]
