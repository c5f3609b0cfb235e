"""OTLP sink: ships span batches to a Collector, Jaeger or Tempo, and never loses them.

* ``grpc`` and ``http/protobuf`` send the bytes of sysspan's own protobuf encoder
  (``otlp_proto.py``) over grpcio or urllib; ``http/json`` POSTs the OTLP/JSON line the
  embedded default writes (``otlp_json.py``). The transports and their shared retry policy
  are in ``otlp_transport.py``.
* A batch that cannot be delivered is appended to a spool file (OTLP JSON lines, the same
  format) so ``sysspan replay SPOOL`` can send it later; ``close()`` says so once.
* A dead endpoint must not hang the run: before the first batch a TCP connect probes the
  endpoint (skipped behind a proxy), and the first batch that fails for a reason that will
  not go away by itself (refused, unreachable, timed out, unavailable after the retries)
  marks the endpoint down, so later batches go straight to the spool. The worst case is
  therefore one export timeout (``settings.timeout_s``), not one per batch; ``shutdown()``
  cuts even that short.
* Export is pipelined (``otlp_sender.py``): the caller encodes a request and queues it for
  one sender thread, so encoding the next batch overlaps the round trip of the last one. At
  most ``_QUEUED_REQUESTS`` encoded requests wait behind the one on the wire; then
  ``export`` blocks. The counters and ``endpoint_down`` describe what is finished: read
  them after :meth:`OtlpSink.flush` or ``close()``.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Any

from sysspan.config import OtlpSettings
from sysspan.exporters.base import ResourceSink, SinkReport, spans_text
from sysspan.exporters.jsonl import JsonlAppender
from sysspan.exporters.otlp_json import encode_line
from sysspan.exporters.otlp_proto import ProtoEncoder
from sysspan.exporters.otlp_sender import RequestQueue
from sysspan.exporters.otlp_transport import (
    GrpcTransport,
    HttpTransport,
    classify,
    probe_until_up,
    with_retries,
)
from sysspan.exporters.wholeline import Fallback
from sysspan.model import ResourceSpans

# Rejections of one payload rather than of the whole endpoint: only that batch is spooled.
_PAYLOAD_REJECTIONS = ("INVALID_ARGUMENT", "HTTP 400", "HTTP 413", "RESOURCE_EXHAUSTED")

# Encoded requests waiting behind the one being sent. One is enough to keep the sender thread
# busy while the caller encodes; a few more absorb jitter in the receiver's answers. Each holds
# its batches (for the spool) and their bytes: with 512-span batches, well under a megabyte.
_QUEUED_REQUESTS = 4


# A queued request: its batches, their span count, and the encoded bytes (None: spool it; a
# string: why encoding failed).
_Request = tuple[list[ResourceSpans], int, bytes | str | None]


def _endpoint_down(reason: str) -> bool:
    return not any(reason.startswith(p) for p in _PAYLOAD_REJECTIONS)


class OtlpSink(ResourceSink):
    """Sends batches over OTLP (``settings.protocol``), spooling what cannot be delivered.

    ``resource`` is the resource of spans given to :meth:`export`; :meth:`export_batches`
    sends pre-grouped batches with their own resources (``replay``). ``remote_parent_ids``
    are parent span ids that came from an incoming ``traceparent``: their parent context is
    marked remote in the OTLP span flags.
    """

    name = "otlp"

    def __init__(
        self,
        settings: OtlpSettings,
        resource: dict[str, Any],
        spool_path: str,
        scope_version: str,
        *,
        remote_parent_ids: Collection[int] = (),
        fallback: Fallback | None = None,
    ) -> None:
        self.settings = settings
        # The protobuf encoder, shared with a BudgetSink in front (it sizes spans with it).
        self.encoder: ProtoEncoder | None = None
        if settings.protocol != "http/json":
            self.encoder = ProtoEncoder(remote_parent_ids=frozenset(remote_parent_ids))
        self._transport: GrpcTransport | HttpTransport | None = None
        self._stop = threading.Event()
        self.resource = resource
        self.spool_path = spool_path
        self.scope_version = scope_version
        self._spool = JsonlAppender(spool_path, fallback)
        self._probed = False
        self._down: str | None = None  # reason the endpoint was given up on
        self._reasons: list[str] = []
        self.sent = 0
        self.spooled = 0
        self.lost = 0
        # (batches, span count, encoded request or None: spool it, or why it could not be made)
        self._requests: RequestQueue[_Request] = RequestQueue(
            self._deliver, self._deliver_failed, _QUEUED_REQUESTS
        )

    # -- public

    @property
    def reasons(self) -> list[str]:
        """Why batches failed so far, each reason once."""
        return list(self._reasons)

    def switch_spool(self, path: str, fallback: Fallback | None = None) -> JsonlAppender:
        """From now on spool to ``path``; returns the previous spool, closed (``replay``
        keeps one spool per source file). Batches given before go to the previous one."""
        self.flush()
        old = self._spool
        old.close()
        self._spool = JsonlAppender(path, fallback)
        self.spool_path = path
        return old

    @property
    def endpoint_down(self) -> str | None:
        """Why the endpoint was given up on (later batches are spooled directly), or None."""
        return self._down

    def export_batches(self, batches: list[ResourceSpans]) -> None:
        """Encode one request holding ``batches`` and queue it for the sender thread, which
        sends it or spools it. Blocks while the queue is full. Never raises."""
        count = sum(len(b.spans) for b in batches)
        if not count:
            return
        data: bytes | str | None = None
        if self._down is None:
            try:
                data = self._encode(batches)
            except Exception as exc:  # an encoder bug: spool the batch, don't crash the run
                data = f"{type(exc).__name__}: {exc}"
        elif self.encoder is not None:
            self.encoder.discard(s for b in batches for s in b.spans)
        self._requests.put((batches, count, data))

    def flush(self) -> None:
        """Wait until every batch given so far has been sent or spooled."""
        self._requests.flush()

    def shutdown(self) -> None:
        """Stop waiting: a retry backoff in progress (on the sender thread) ends now and that
        request is spooled; so is every later one once a request has failed. A queued request
        the endpoint accepts at its first attempt is still sent: nothing waits any more, and
        nothing is dropped. Safe to call from any thread."""
        self._stop.set()

    def close(self) -> SinkReport:
        self._requests.close()  # drains: every queued request is sent or spooled first
        self._stop.set()
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._spool.close()
        spool = self._spool.file
        self.spooled, self.lost = spool.items, spool.lost
        url = self.settings.endpoint
        report = SinkReport(
            name=self.name,
            spans_written=self.sent,
            spans_failed=self.spooled + self.lost,
            path=spool.path if self.spooled else None,
            degraded=spool.moved,
        )
        if self.sent or not (self.spooled or self.lost):
            report.messages.append(
                f"sent {spans_text(self.sent)} to {url} ({self.settings.protocol})"
            )
        if self.spooled or self.lost:
            why = ", ".join(self._reasons) or "export failed"
            if self._down is not None:
                head = f"could not reach {url} ({why}); stopped trying after the first failure"
            else:
                head = f"{url} did not accept some spans ({why})"
            parts = [
                f"{spans_text(n)} spooled to {p} (send later: sysspan replay {p})"
                for p, n in spool.written.items()
                if n
            ]
            if spool.moved or self.lost:
                parts += self._spool.describe()
            report.messages.append(head + ": " + "; ".join(parts))
        return report

    # -- sending

    def _encode(self, batches: list[ResourceSpans]) -> bytes:
        if self.encoder is not None:
            return self.encoder.request(batches)
        return encode_line(batches).encode("utf-8", "backslashreplace")

    def _deliver(self, request: _Request) -> None:
        """On the sender thread: send one request, or spool its batches."""
        batches, count, data = request
        if self._down is None and data is not None:
            if isinstance(data, str):
                reason: str | None = classify(data)
                self._down = reason
            else:
                try:
                    reason = self._send(data)
                except Exception as exc:  # a grpcio bug or a bad certificate: spool, don't crash
                    reason = classify(f"{type(exc).__name__}: {exc}")
                    self._down = reason
            if reason is None:
                self.sent += count
                return
            if reason not in self._reasons:
                self._reasons.append(reason)
            if self._down is None and (_endpoint_down(reason) or self._stop.is_set()):
                self._down = reason
        self._spool_batches(batches, count)

    def _deliver_failed(self, request: _Request, exc: BaseException) -> None:
        """A bug in :meth:`_deliver`: the batches still go to the spool."""
        reason = classify(f"{type(exc).__name__}: {exc}")
        if reason not in self._reasons:
            self._reasons.append(reason)
        self._spool_batches(request[0], request[1])

    def _spool_batches(self, batches: list[ResourceSpans], count: int) -> None:
        if self._spool.append(batches, count):
            self.spooled += count
        else:
            self.lost += count

    def _send(self, data: bytes) -> str | None:
        """None on success, else a short reason."""
        if not self._probed:
            self._probed = True
            reason = probe_until_up(self.settings.endpoint, self.settings.timeout_s, self._stop)
            if reason is not None:
                self._down = reason
                return reason
        if self._transport is None:
            self._transport = self._make_transport()
        transport = self._transport
        if isinstance(transport, HttpTransport):
            data = transport.prepare(data)
        return with_retries(
            lambda remaining: transport.attempt(data, remaining), self.settings.timeout_s, self._stop
        )

    def _make_transport(self) -> GrpcTransport | HttpTransport:
        protocol = self.settings.protocol
        if protocol == "grpc":
            return GrpcTransport(self.settings)
        if protocol == "http/json":
            return HttpTransport(self.settings, "application/json")
        return HttpTransport(self.settings, "application/x-protobuf")
