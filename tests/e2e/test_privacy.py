"""Nothing leaves the machine: ingest, search and ask with every non-loopback connection refused."""

from __future__ import annotations

import ipaddress
import socket

import pytest

import rag
from rag.answering import Assistant
from tests.conftest import make_settings


@pytest.fixture
def loopback_only(monkeypatch):
    """Refuse and record any socket connection to an address outside 127.0.0.0/8 and ::1."""
    attempts: list[object] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def outside(address) -> bool:
        if not isinstance(address, tuple):  # unix sockets stay on the machine
            return False
        try:
            return not ipaddress.ip_address(address[0]).is_loopback
        except ValueError:  # a host name: resolving it would already be a lookup
            return address[0] != "localhost"

    def guarded(real):
        def connect(sock, address):
            if outside(address):
                attempts.append(address)
                raise ConnectionRefusedError(f"test: outbound connection to {address} blocked")
            return real(sock, address)

        return connect

    monkeypatch.setattr(socket.socket, "connect", guarded(real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(real_connect_ex))
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host not in (None, "localhost") and not _is_ip(host):
            attempts.append(("dns", host))
            raise socket.gaierror(f"test: DNS lookup of {host} blocked")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    assert attempts == [], f"rag tried to reach the network: {attempts}"


def _is_ip(host) -> bool:
    try:
        ipaddress.ip_address(host if isinstance(host, str) else host.decode())
        return True
    except ValueError:
        return False


def test_ingest_search_and_ask_stay_on_the_machine(loopback_only, notes, home):
    settings = make_settings(home, llm={"temperature": 0.0, "max_tokens": 8})
    report = rag.ingest([notes], settings)
    assert len(report.added) == 4
    hits = rag.search("What baud rate does the calibration script use?", settings, k=2)
    assert hits[0].source.endswith("calibrate.py")
    answer = Assistant(settings, k=2).ask("What baud rate does the calibration script use?")
    assert answer.sources and answer.answer
    assert loopback_only == []


@pytest.mark.fast
def test_the_guard_really_catches_outbound_connections(loopback_only):
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("192.0.2.1", 80), timeout=1)  # TEST-NET-1: never routed anyway
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("telemetry.example.com", 443)
    assert loopback_only == [("192.0.2.1", 80), ("dns", "telemetry.example.com")]
    loopback_only.clear()
