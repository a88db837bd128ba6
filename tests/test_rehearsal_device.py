"""The rehearsal's esp_https_ota-like client against the real server on loopback: the requests it
sends are the ones ESP-IDF v5.3.2's esp_https_ota sends (docs/esp-idf.md §7.4)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from esp_ota_doit.paths import cert_files
from esp_ota_doit.rehearsal import virtual_device
from esp_ota_doit.serve.console import Transfer
from esp_ota_doit.serve.protocol import resource
from esp_ota_doit.serve.server import Server
from esp_ota_doit.tls import certs


@pytest.mark.parametrize(
    ("total", "size", "expected"),
    [
        (11344, 65536, [None]),  # smaller than a request: one plain GET
        (8192, 8192, [None]),  # exactly one request: still no Range
        (8193, 8192, ["bytes=0-8191", "bytes=8192-"]),
        (16384, 8192, ["bytes=0-8191", "bytes=8192-"]),  # the last range is open-ended
        (20000, 8192, ["bytes=0-8191", "bytes=8192-16383", "bytes=16384-"]),
    ],
)
def test_ranges__as_esp_https_ota_asks(total: int, size: int, expected: list[str | None]) -> None:
    assert virtual_device.ranges(total, size) == expected


class _Requests:
    """(method, Range) of each request in the order it came over the wire, as the server saw it;
    `wait` blocks (bounded) until `count` of them have come. Recorded when the server starts to
    answer: the client asks again only once it holds the whole answer, while the server's "end"
    comes after the client's acknowledgement, when the next request may already be answered."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.changed = threading.Condition()

    def listener(self, kind: str, item: Transfer | str) -> None:
        if kind == "start" and isinstance(item, Transfer):
            with self.changed:
                self.seen.append((item.method, item.range_text))
                self.changed.notify_all()

    def wait(self, count: int) -> list[tuple[str, str]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.seen) >= count, timeout=10)
            return list(self.seen)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, Path, _Requests]]:
    """A 20000-byte file at /image.bin on 127.0.0.1; yields (port, CA file, requests seen)."""
    plan = certs.plan(
        project="t", host="127.0.0.1", key="ec-p256", days=30, certs_dir=tmp_path, env={}
    )
    certs.issue(plan)
    where = cert_files(tmp_path)
    requests = _Requests()
    server = Server(
        resources={"/image.bin": resource(bytes(range(256)) * 78 + b"x" * 32, "application/x")},
        cert=where.server_cert,
        key=where.server_key,
        bind="127.0.0.1",
        port=0,
        listener=requests.listener,  # type: ignore[arg-type]
    )
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        yield server.port, where.ca_cert, requests
    finally:
        stop.set()
        thread.join(timeout=5)


@pytest.mark.parametrize(
    ("request_size", "expected"),
    [
        (65536, [("HEAD", ""), ("GET", "")]),
        (
            8192,
            [
                ("HEAD", ""),
                ("GET", "bytes=0-8191"),
                ("GET", "bytes=8192-16383"),
                ("GET", "bytes=16384-"),
            ],
        ),
    ],
)
def test_partial_download__the_requests_on_the_wire(
    served: tuple[int, Path, _Requests], request_size: int, expected: list[tuple[str, str]]
) -> None:
    port, ca, requests = served
    client = virtual_device.OtaClient(
        url=f"https://127.0.0.1:{port}/image.bin",
        ca_file=ca,
        target="esp32",
        partial=True,
        request_size=request_size,
        check_version=False,
    )
    lines: list[str] = []
    data = virtual_device.download(client, lines.append)
    assert data == bytes(range(256)) * 78 + b"x" * 32
    assert requests.wait(len(expected)) == expected
    assert lines[0] == (
        "ota: HEAD: Content-Length 20000; "
        + (
            "one GET (the request size is 65536)"
            if len(expected) == 2
            else "3 Range GETs of up to 8192 bytes"
        )
    )
