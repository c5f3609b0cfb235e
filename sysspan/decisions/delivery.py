"""What every decision transport does with what it read: count it, pass it through the
gate, hand it to ``on_decision`` (the pipe and the shared-memory ring share this)."""

from __future__ import annotations

from collections.abc import Callable

from sysspan.decisions.model import Decision
from sysspan.decisions.sampling import DecisionGate

__all__ = ["DecisionDelivery"]


class DecisionDelivery:
    """Counters and hand-over of one transport.

    ``received``  decisions read; ``skipped`` decisions writers sampled away in-process;
    ``malformed`` records that did not parse (also added to the gate's ``malformed``);
    ``callback_errors`` exceptions ``on_decision`` raised (the reader goes on).
    With a ``gate`` only admitted decisions reach ``on_decision`` (the gate counts all).
    """

    def __init__(self, on_decision: Callable[[Decision], None] | None, gate: DecisionGate | None) -> None:
        self.on_decision = on_decision
        self.gate = gate
        self.received = 0
        self.skipped = 0
        self.malformed = 0
        self.callback_errors = 0

    def _deliver(self, decision: Decision, t_ns: int, presampled: bool) -> None:
        self.received += 1
        gate = self.gate
        if gate is not None and not gate.admit(t_ns, presampled=presampled):
            return
        if self.on_decision is not None:
            try:
                self.on_decision(decision)
            except Exception:  # noqa: BLE001 - a sink problem must not stop the reader
                self.callback_errors += 1

    def _skipped(self, n: int) -> None:
        if n:
            self.skipped += n
            if self.gate is not None:
                self.gate.note_skipped(n)

    def _malformed(self, n: int) -> None:
        self.malformed += n
        if self.gate is not None:
            self.gate.note_malformed(n)
