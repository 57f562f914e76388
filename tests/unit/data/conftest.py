"""Fixtures for the dataset tests."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch):
    """Make every network connection fail at once, as on a machine without internet."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(2)  # even if something slipped past the patches, nothing can hang
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield
    socket.setdefaulttimeout(previous)
