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
# compose service name (see compose/), or `--network host`. With no endpoint, or when
# export fails, spans go to /work/sysspan-traces/*.jsonl inside the container: mount a
# directory there to keep them (`--user "$(id -u):$(id -g)" -v "$PWD/out:/work/sysspan-traces"`).
#
# The entrypoint is `sysspan --`, so whatever follows the image name is the traced
# command. To pass sysspan options (-f to follow forks, -e trace=%file, -c, ...), replace
# the entrypoint: `docker run --entrypoint sysspan ... sysspan:dev -f -- COMMAND`.
#
# The traced command's environment is the one you give the container: the image sets no
# variables. sysspan's own interpreter runs with -I -u -B (isolated from PYTHON* variables
# and the working directory, unbuffered, no bytecode files), which its children do not
# inherit; sysspan adds only TRACEPARENT (its run span) and its decision channel
# (SYSSPAN_DECISION_*) for the command, as it does anywhere.
#
# User: the image runs as the unprivileged user `sysspan` (uid 10001) by default; tracing
# the command it starts is tracing its own child, which needs no privilege. SYS_PTRACE:
# Docker's default seccomp profile allows ptrace on kernels 4.8 and newer; on older ones
# it does so only for containers given `--cap-add SYS_PTRACE`, which is why the examples
# pass it. Attaching to processes of other users (`-p PID`) needs `--user root` as well.

FROM python:3.12-slim

# Install the project from its own files only (see .dockerignore): the packaging metadata
# first, then the package, so editing tests or docs never invalidates this layer.
WORKDIR /src
COPY pyproject.toml README* LICENSE* ./
COPY sysspan ./sysspan
RUN pip install --no-cache-dir --disable-pip-version-check . \
    && rm -rf /src \
    && sysspan --help > /dev/null \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin sysspan \
    && mkdir /work \
    && chown sysspan:sysspan /work

WORKDIR /work
USER 10001

ENTRYPOINT ["python3", "-I", "-u", "-B", "-m", "sysspan", "--"]
# Demo workload: reads a file, fails to open another (an ENOENT error span) and lists a
# directory, all in one process so it is fully traced without -f.
CMD ["python3", "-c", "import os\nfor p in ('/etc/hostname', '/nonexistent'):\n    try:\n        open(p).read()\n    except OSError as e:\n        print(p, e.strerror)\nprint(len(os.listdir('/')), 'entries in /')"]
