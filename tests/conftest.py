"""Shared pytest fixtures. Each component's fixtures live in their own section below;
add new sections rather than editing others'."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# ---------------------------------------------------------------------------
# Repository layout
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout's top directory (holds pyproject.toml)."""
    return Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------
# OTLP receivers (exporters): real servers on 127.0.0.1 ephemeral ports,
# started and stopped per test. See tests/otlp_receiver.py.
# ---------------------------------------------------------------------------


@pytest.fixture
def grpc_receiver() -> Iterator:
    from tests.otlp_receiver import GrpcReceiver

    receiver = GrpcReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def http_receiver() -> Iterator:
    from tests.otlp_receiver import HttpReceiver

    receiver = HttpReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()
