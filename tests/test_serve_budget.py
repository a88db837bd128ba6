"""The built-in server's connection budget: per-address and total caps, idle ones evicted first,
never one mid-transfer; pure bookkeeping first, then the real server on loopback."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import math
import selectors
import socket
import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from esp_ota_doit.config import loader, model
from esp_ota_doit.paths import Paths
from esp_ota_doit.serve import budget, serving
from esp_ota_doit.serve.budget import CLOSING, Budget, Refused, Throttle
from esp_ota_doit.serve.protocol import Limits

from tests.test_serve import (
    Site,
    context,
    make_image,
    make_site,
    running,
    serve_one_request,
)

FLOOD = 2000


# ------------------------------------------------------------------------------ bookkeeping


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Unconnected sockets standing for connections (the budget only stores them)."""
    made: list[socket.socket] = []
    yield made
    for sock in made:
        sock.close()


def admit(budget: Budget, address: str, now: float, made: list[socket.socket]) -> object:
    made.append(socket.socket())
    return budget.admit(address, made[-1], now=now, deadline=now + 20)


def test_budget__the_per_client_cap_refuses_only_that_address(
    sockets: list[socket.socket],
) -> None:
    budget = Budget(total=10, per_client=2)
    assert not isinstance(admit(budget, "10.0.0.1", 0, sockets), Refused)
    assert not isinstance(admit(budget, "10.0.0.1", 1, sockets), Refused)
    assert admit(budget, "10.0.0.1", 2, sockets) == Refused("per_client", "10.0.0.1", 2)
    assert not isinstance(admit(budget, "10.0.0.2", 3, sockets), Refused)
    assert budget.open == 3


def test_budget__full_evicts_the_idlest_of_the_address_holding_most(
    sockets: list[socket.socket],
) -> None:
    budget = Budget(total=3, per_client=3)
    admitted = [admit(budget, address, now, sockets) for now, address in enumerate("BAA")]
    board, oldest_flood, _ = (pair[0] for pair in admitted)  # type: ignore[index]
    slot, victim = admit(budget, "C", 3, sockets)  # type: ignore[misc]
    assert victim is oldest_flood  # not the board, though it has been idle longer
    assert (victim.evicted, board.evicted, budget.open) == (True, False, 3)
    assert not budget.waiting(victim, now=4, deadline=30)
    assert not budget.busy(victim)
    assert not budget.swap(victim, sockets[0])
    assert budget.waiting(slot, now=4, deadline=30)


def test_budget__a_connection_mid_transfer_is_never_evicted(sockets: list[socket.socket]) -> None:
    budget = Budget(total=2, per_client=2)
    (sending, _), (idle, _) = admit(budget, "A", 0, sockets), admit(budget, "B", 1, sockets)  # type: ignore[misc]
    assert budget.busy(sending)
    for now in range(2, 6):  # the idle slot goes, then each newcomer in its turn
        slot, victim = admit(budget, "C", now, sockets)  # type: ignore[misc]
        assert victim is idle and not sending.evicted
        idle = slot
    assert budget.busy(idle)
    assert admit(budget, "D", 9, sockets) == Refused("full", "D", 2)
    budget.waiting(sending, now=10, deadline=40)  # answered, waiting again: evictable
    assert admit(budget, "D", 11, sockets)[1] is sending  # type: ignore[index]


def test_budget__evicted_sockets_still_closing_are_bounded(sockets: list[socket.socket]) -> None:
    budget = Budget(total=1, per_client=1)
    first, _ = admit(budget, "A", 0, sockets)  # type: ignore[misc]
    victims = [admit(budget, f"10.0.0.{n}", n, sockets)[1] for n in range(1, CLOSING + 1)]  # type: ignore[index]
    assert len(victims) == CLOSING and victims[0] is first
    assert admit(budget, "B", 99, sockets) == Refused("full", "B", 1)
    budget.release(first)  # its worker closed it: room again
    assert not isinstance(admit(budget, "B", 100, sockets), Refused)
    assert budget.open == 1


def test_budget__descriptor_headroom_lets_more_evicted_sockets_close_late(
    sockets: list[socket.socket],
) -> None:
    budget = Budget(total=1, per_client=1, descriptors=100)
    for n in range(100):  # one open, 99 evicted and not yet closed
        assert not isinstance(admit(budget, f"10.0.0.{n}", n, sockets), Refused)
    assert admit(budget, "B", 100, sockets) == Refused("full", "B", 1)


def test_budget__release_frees_the_address_and_expired_reports_once(
    sockets: list[socket.socket],
) -> None:
    budget = Budget(total=4, per_client=1)
    slot, _ = admit(budget, "A", 0, sockets)  # type: ignore[misc]
    assert budget.expired(19.9) == []
    assert budget.expired(20) == [slot.conn]
    assert budget.expired(21) == [] and slot.deadline == math.inf
    budget.release(slot)
    assert budget.open == 0 and budget.sockets() == []
    assert not isinstance(admit(budget, "A", 22, sockets), Refused)


def test_budget__a_per_client_cap_at_the_total_leaves_eviction_to_the_total(
    sockets: list[socket.socket],
) -> None:
    budget = Budget(total=2, per_client=2)
    first, _ = admit(budget, "A", 0, sockets)  # type: ignore[misc]
    admit(budget, "A", 1, sockets)
    assert admit(budget, "A", 2, sockets)[1] is first  # type: ignore[index]


def test_throttle__one_note_per_key_and_interval_counting_the_quiet_ones() -> None:
    throttle = Throttle(every=10)
    assert throttle.due("a", 0) == 0
    assert [throttle.due("a", t) for t in (1, 2, 3)] == [None, None, None]
    assert throttle.due("b", 3) == 0
    assert throttle.due("a", 10) == 3
    assert throttle.due("a", 11) is None


def test_refused__notes_name_the_option() -> None:
    assert Refused("per_client", "10.0.0.9", 32).note(0) == (
        "10.0.0.9 refused: it holds 32 connections already, the most ota.max_per_client allows"
    )
    assert (
        Refused("full", "10.0.0.9", 8)
        .note(5)
        .endswith("(ota.max_connections) (5 more refused since the last note)")
    )


@pytest.mark.parametrize(
    ("limits", "connections", "expected"),
    [
        ((1024, 524288), 1024, (524288, 524288)),  # a common default: raised to the hard limit
        ((256, 512), 1024, (512, 512)),
        ((20000, 20000), 1024, None),  # enough already: untouched
        ((2111, 4096), 1024, (4096, 4096)),  # 1024 open, as many closing, the margin: 2112
        ((1024, -1), 4096, (8256, -1)),  # hard unlimited (RLIM_INFINITY is -1 on Linux)
    ],
)
def test_raise_descriptor_limit__to_the_hard_limit_when_the_budget_needs_it(
    monkeypatch: pytest.MonkeyPatch,
    limits: tuple[int, int],
    connections: int,
    expected: tuple[int, int] | None,
) -> None:
    import resource

    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "RLIM_INFINITY", -1)
    monkeypatch.setattr(resource, "getrlimit", lambda which: limits)
    monkeypatch.setattr(resource, "setrlimit", lambda which, value: calls.append(value))
    budget.raise_descriptor_limit(connections)
    assert calls == ([expected] if expected else [])


def test_limits__defaults_are_the_project_yaml_defaults() -> None:
    fields = {f.name: f for f in dataclasses.fields(model.Ota)}
    plan_fields = {f.name: f for f in dataclasses.fields(serving.ServePlan)}
    assert Limits().connections == fields["max_connections"].metadata["default"] == 1024
    assert Limits().per_client == fields["max_per_client"].metadata["default"] == 32
    assert plan_fields["max_connections"].default == 1024
    assert plan_fields["max_per_client"].default == 32


def test_plan__carries_the_limits_from_project_yaml(tmp_path: Path) -> None:
    text = (
        "name: x\ntarget: esp32\nflash: {size: 4MB}\n"
        "apps: {hello_world: {path: 'idf:examples/get-started/hello_world', version: '1'}}\n"
        "flash_app: hello_world\n"
        "ota: {url: 'https://10.0.0.2:8070/a.bin', image: hello_world, "
        "max_connections: 200, max_per_client: 4}\n"
    )
    project = loader.load(
        text, file="project.yaml", env={}, resolve_host=lambda h: h, project_dir=tmp_path
    )
    plan = serving.plan(project, Paths(tmp_path))
    assert (plan.max_connections, plan.max_per_client) == (200, 4)
    assert plan.to_json()["max_per_client"] == 4


# ------------------------------------------------------------------------ the real server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return make_site(tmp_path_factory.mktemp("budget") / "project")


@pytest.fixture(scope="module")
def big_site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """An image larger than loopback's largest send buffer (tcp_wmem max, 4 MiB by default) plus
    a small receive window: the server cannot finish sending it while the client does not read."""
    image = make_image(size=6 * 1024 * 1024)
    return make_site(tmp_path_factory.mktemp("big") / "project", image=image)


@pytest.fixture
def descriptors() -> None:
    """Room for a flood and the server's side of it in this one process."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 3 * FLOOD + 1000
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(reason=f"descriptors missing: RLIMIT_NOFILE hard limit {hard} < {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


# Long handshake and head timeouts: only the budget may close a flood socket in these tests.
PATIENT = Limits(handshake_timeout=120, head_timeout=120)


def flood(port: int, count: int) -> list[socket.socket]:
    """`count` silent TCP connections from 127.0.0.1: no ClientHello, ever."""
    return [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(count)]


def closed_by_server(socks: list[socket.socket], count: int, timeout: float = 30) -> set[int]:
    """Indexes of the sockets the server has closed, waiting (on events) until `count` are."""
    closed: set[int] = set()
    with selectors.DefaultSelector() as selector:  # epoll: select() stops at descriptor 1024
        for index, sock in enumerate(socks):
            selector.register(sock, selectors.EVENT_READ, index)
        ready = True
        while ready and len(closed) < count:
            ready = selector.select(timeout)  # nothing within `timeout`: give up, assert below
            for key, _ in ready:
                selector.unregister(key.fileobj)
                with contextlib.suppress(ConnectionResetError):
                    assert socks[key.data].recv(1) == b""
                closed.add(key.data)
        closed |= {key.data for key, _ in selector.select(0.2)}  # any beyond `count`
    return closed


def download_from(site: Site, port: int, source: str) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection(
        "127.0.0.1", port, context=context(site), timeout=30, source_address=(source, 0)
    )
    try:
        conn.request("GET", "/hello_world.bin")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def stalled_download(site: Site, port: int) -> tuple[ssl.SSLSocket, bytes]:
    """A GET whose reader has taken only the head: with a tiny receive window the server stays
    in the middle of sending the body until the test reads on."""
    plain = socket.socket()
    plain.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    plain.settimeout(30)
    plain.connect(("127.0.0.1", port))
    tls = context(site).wrap_socket(plain, server_hostname="127.0.0.1")
    tls.sendall(b"GET /hello_world.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    received = b""
    while b"\r\n\r\n" not in received:
        received += tls.recv(4096)
    return tls, received


def rest_of(tls: ssl.SSLSocket, received: bytes, size: int) -> bytes:
    body = received.partition(b"\r\n\r\n")[2]
    while len(body) < size and (chunk := tls.recv(65536)):
        body += chunk
    return body


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


@pytest.mark.usefixtures("descriptors")
def test_serve__a_flood_from_one_address_is_capped_and_a_board_downloads(site: Site) -> None:
    """The issue's case: one client holds 2,000 idle connections; a board elsewhere downloads."""
    with running(site, limits=PATIENT) as (port, lines):
        socks = flood(port, FLOOD)
        try:
            closed = closed_by_server(socks, FLOOD - 32)
            assert len(closed) == FLOOD - 32  # refused at once; 32 held, silent, untouched
            assert download_from(site, port, "127.0.0.2") == (200, site.image)
            with pytest.raises((ssl.SSLError, OSError)):  # the flooder's next one: refused
                download_from(site, port, "127.0.0.1")
            held = [sock for index, sock in enumerate(socks) if index not in closed]
            assert closed_by_server(held, 1, timeout=0.2) == set()
            assert not any("TLS handshake failed" in line for line in lines)  # not until closed
        finally:
            close_all(socks)
    notes = [line for line in lines if "refused" in line]
    assert notes[0] == (
        "127.0.0.1 refused: it holds 32 connections already, the most ota.max_per_client allows"
    )
    assert len(notes) == 1  # throttled: one note per address every 10 s


@pytest.mark.usefixtures("descriptors")
def test_serve__at_the_total_cap_the_idlest_go_and_a_download_succeeds(site: Site) -> None:
    """One address allowed all 1,024 slots: 2,000 silent connections fill them; the oldest are
    closed for newcomers, and a download from that same address still gets through."""
    limits = replace(PATIENT, per_client=FLOOD)  # at or above the total: no per-address cap
    with running(site, limits=limits) as (port, lines):
        socks = flood(port, FLOOD)
        try:
            evicted = FLOOD - 1024
            assert len(closed_by_server(socks, evicted)) == evicted
            status, body = download_from(site, port, "127.0.0.1")
            assert (status, body == site.image) == (200, True)
            assert len(closed_by_server(socks, evicted + 1)) == evicted + 1  # one more made room
            assert download_from(site, port, "127.0.0.2") == (200, site.image)
        finally:
            close_all(socks)
    notes = [line for line in lines if "to make room" in line]
    assert notes[0] == (
        "1024 connections open (ota.max_connections): closed the one idle longest, from "
        "127.0.0.1, to make room"
    )


def test_serve__a_download_mid_transfer_is_never_evicted(big_site: Site) -> None:
    site = big_site
    limits = replace(PATIENT, connections=4, per_client=4)
    with running(site, limits=limits) as (port, lines):
        tls, received = stalled_download(site, port)
        socks = flood(port, 40)  # 3 free slots, taken and retaken 13 times over
        try:
            assert len(closed_by_server(socks, 37)) == 37
            assert not any("/hello_world.bin" in line for line in lines)  # still sending
            assert received.startswith(b"HTTP/1.1 200 ")
            assert rest_of(tls, received, len(site.image)) == site.image
        finally:
            close_all(socks)
            tls.close()
    assert any("to make room" in line for line in lines)


def test_serve__when_every_slot_is_mid_transfer_a_newcomer_is_refused(big_site: Site) -> None:
    site = big_site
    limits = replace(PATIENT, connections=1, per_client=1)
    with running(site, limits=limits) as (port, lines):
        tls, received = stalled_download(site, port)
        with tls:
            with pytest.raises((ssl.SSLError, OSError)):
                download_from(site, port, "127.0.0.2")
            assert not any("/hello_world.bin" in line for line in lines)  # still sending
            assert rest_of(tls, received, len(site.image)) == site.image
    assert "127.0.0.2 refused: all 1 connections are mid-transfer or closing" in "\n".join(lines)


def test_run__prints_the_connection_limits(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    serve_one_request(site, replace(site.plan, port=0, max_connections=100, max_per_client=5))
    out = capsys.readouterr().out.splitlines()
    assert out[4] == (
        "connections: at most 100, 5 per client address; when full, the one idle longest is "
        "closed for a newcomer"
    )
    assert out[5] == "Ctrl-C stops the server"
