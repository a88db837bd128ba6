"""doit serve: checks and refusals, then the real server on loopback with real TLS clients."""

from __future__ import annotations

import _thread
import hashlib
import http.client
import json
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from esp_ota_doit.config import loader
from esp_ota_doit.device import record
from esp_ota_doit.device.record import BoardRecord, FlashedImage, RunningApp
from esp_ota_doit.errors import ConfigErrors
from esp_ota_doit.firmware import outputs
from esp_ota_doit.firmware.outputs import AppSummary, EsptoolArgs, FlashSettings, ImageEntry
from esp_ota_doit.idf import app_code
from esp_ota_doit.idf.esp_image import AppImage
from esp_ota_doit.paths import Paths, cert_files
from esp_ota_doit.release import releasing
from esp_ota_doit.serve import engines, serving
from esp_ota_doit.serve.protocol import (
    ByteRange,
    Limits,
    Request,
    parse_range,
    resource,
    respond,
)
from esp_ota_doit.serve.server import Console, Server
from esp_ota_doit.tls import certs
from hypothesis import given, settings
from hypothesis import strategies as st

IMAGE_SIZE = 1_500_000

PROJECT_YAML = """\
name: ota-demo
target: {target}
flash: {{size: 4MB, mode: dio}}
apps:
  factory: {{path: "idf:examples/system/ota/simple_ota_example", version: 1.0.0, ota_client: true}}
  hello_world: {{path: "idf:examples/get-started/hello_world", version: 1.0.1}}
flash_app: factory
ota:
  url: https://{host}:{port}/hello_world.bin
  image: hello_world
  bind: 127.0.0.1
wifi: {{ssid: myssid}}
"""


def make_image(target: str = "esp32", version: str = "1.0.1", size: int = IMAGE_SIZE) -> bytes:
    """A valid app image: DROM opening with esp_app_desc_t, then code; esptool saves it."""
    from esptool.bin_image import ELFSection
    from esptool.targets import CHIP_DEFS

    chip = CHIP_DEFS[target]
    image = chip.BOOTLOADER_IMAGE()
    desc = struct.pack(
        "<II8s32s32s16s16s32s32sHH76s",
        0xABCD5432,
        0,
        b"",
        version.encode(),
        b"hello_world",
        b"",
        b"",
        b"v5.3.2",
        bytes(32),
        0,
        99,
        b"",
    )
    drom, drom_addr = desc + bytes(1024), chip.DROM_MAP_START + 0x20
    after = 0x20 + len(drom) + 8  # the code's file offset; its address must match it mod 64K
    irom = chip.IROM_MAP_START + (after // 0x10000 + 1) * 0x10000 + after % 0x10000
    image.entrypoint = irom
    code = hashlib.shake_256(f"{target}{version}".encode()).digest(size)
    image.segments = [
        ELFSection(b".flash.appdesc", drom_addr, drom, 0),
        ELFSection(b".flash.text", irom, code, 0),
    ]
    return bytes(image.save(None))


_IMAGES: dict[tuple[str, str, int], bytes] = {}


def cached_image(target: str = "esp32", version: str = "1.0.1", size: int = IMAGE_SIZE) -> bytes:
    key = (target, version, size)
    if key not in _IMAGES:
        _IMAGES[key] = make_image(target, version, size)
    return _IMAGES[key]


@dataclass(frozen=True)
class Site:
    root: Path
    plan: serving.ServePlan
    image: bytes

    @property
    def ca(self) -> Path:
        return cert_files(self.plan.certs_dir).ca_cert

    @property
    def key_pem(self) -> bytes:
        return cert_files(self.plan.certs_dir).server_key.read_bytes()


def summary(app: str, image_file: Path, data: bytes, *, ca_sha256: str | None) -> AppSummary:
    """An app.json as `doit build` writes it, built through its typed owner."""
    digest = hashlib.sha256(data).hexdigest()
    return AppSummary(
        app=app,
        target="esp32",
        app_image=AppImage(
            name=image_file.name, size=len(data), sha256=digest, chip_id=0, version="1.0.1"
        ),
        images=(
            ImageEntry(
                role="bootloader", offset=0x1000, file=Path("b.bin"), size=1, sha256="b" * 64
            ),
            ImageEntry(
                role="partition-table", offset=0x8000, file=Path("p.bin"), size=1, sha256="p" * 64
            ),
            ImageEntry(role="app", offset=0x10000, file=image_file, size=len(data), sha256=digest),
        ),
        flash_settings=FlashSettings(flash_mode="dio", flash_size="4MB", flash_freq="40m"),
        esptool_args=EsptoolArgs(),
        merged=image_file.with_name("merged.bin"),
        ca_sha256=ca_sha256,
    )


def make_site(
    root: Path,
    *,
    host: str = "127.0.0.1",
    cert_host: str | None = None,
    port: int = 8070,
    image: bytes | None = None,
    release: bool = True,
) -> Site:
    """A project folder: certs/, build/hello_world (the served image), build/factory/app.json,
    and the image released (releases/hello_world/1.0.1/)."""
    root.mkdir(parents=True, exist_ok=True)
    text = PROJECT_YAML.format(target="esp32", host=host, port=port)
    (root / "project.yaml").write_text(text)
    project = loader.load(
        text, file="project.yaml", env={}, resolve_host=lambda h: h, project_dir=root
    )
    paths = Paths(root)
    certs.issue(
        certs.plan(
            project="ota-demo",
            host=cert_host or host,
            key="ec-p256",
            days=30,
            certs_dir=paths.certs,
            env={},
        )
    )
    data = cached_image() if image is None else image
    image_file = paths.app_build("hello_world") / "hello_world.bin"
    image_file.parent.mkdir(parents=True, exist_ok=True)
    image_file.write_bytes(data)
    outputs.write(
        paths.app_summary("hello_world"), summary("hello_world", image_file, data, ca_sha256=None)
    )
    ca_sha = hashlib.sha256(cert_files(paths.certs).ca_cert.read_bytes()).hexdigest()
    factory = paths.app_summary("factory")
    factory.parent.mkdir(parents=True, exist_ok=True)
    outputs.write(factory, summary("factory", image_file, data, ca_sha256=ca_sha))
    if release:
        plan = releasing.plan(project, paths)
        assert plan is not None
        releasing.record_release(plan)
    return Site(root=root, plan=serving.plan(project, paths), image=data)


class LogLines(list[str]):
    """The request log as the Console writes it; `wait_for` blocks (bounded) until a line holding
    the text arrives: the server logs a transfer once the client has acknowledged it all."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def add(self, line: str) -> None:
        with self.changed:
            self.append(line)
            self.changed.notify_all()

    def wait_for(self, text: str, timeout: float = 10) -> str:
        with self.changed:
            found = self.changed.wait_for(
                lambda: next((line for line in self if text in line), None), timeout
            )
        assert found, f"no log line with {text!r} in {list(self)}"
        return found


@contextmanager
def running(site: Site, *, limits: Limits | None = None) -> Iterator[tuple[int, LogLines]]:
    """The server on 127.0.0.1:<ephemeral>, serving in a thread; yields (port, log lines)."""
    content = serving.check(site.plan, emit=lambda _: None)
    lines = LogLines()
    console = Console("text")
    where = cert_files(site.plan.certs_dir)

    def listener(kind: str, item: object) -> None:
        if isinstance(item, str):
            lines.add(item)
        elif kind == "end":
            lines.add(console.request_line(item))  # type: ignore[arg-type]

    server = Server(
        resources=content.resources,
        cert=where.server_cert,
        key=where.server_key,
        bind="127.0.0.1",
        port=0,
        listener=listener,  # type: ignore[arg-type]
        limits=limits,
    )
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        yield server.port, lines
    finally:
        stop.set()
        thread.join(timeout=5)
        assert not thread.is_alive()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return make_site(tmp_path_factory.mktemp("site") / "project")


@pytest.fixture(scope="module")
def live(site: Site) -> Iterator[tuple[int, LogLines]]:
    with running(site) as started:
        yield started


def context(site: Site) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(site.ca))


def get(
    site: Site, port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context(site), timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def serve_one_request(site: Site, plan: serving.ServePlan) -> int:
    """engines.run in a thread until one request is answered, then stopped as doit serve is;
    the port it bound."""
    ready, stop, ports = threading.Event(), threading.Event(), []
    thread = threading.Thread(
        target=engines.run,
        args=(plan,),
        kwargs={"ready": ready, "stop": stop, "on_bound": ports.append},
    )
    thread.start()
    assert ready.wait(10)
    assert get(site, ports[0], "/hello_world.bin.sha256")[0] == 200
    stop.set()
    thread.join(10)
    return ports[0]


def raw(site: Site, port: int, request: bytes, *, host: str = "127.0.0.1") -> bytes:
    """Send bytes as they are over TLS (no URL cleaning by a client); read until EOF."""
    plain = socket.create_connection(("127.0.0.1", port), timeout=10)
    with context(site).wrap_socket(plain, server_hostname=host) as tls:
        tls.sendall(request)
        chunks = []
        while chunk := tls.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


# ------------------------------------------------------------------------------------ the plan


def test_plan__from_project_yaml(site: Site) -> None:
    plan = site.plan
    assert (plan.url, plan.url_path, plan.port, plan.bind) == (
        "https://127.0.0.1:8070/hello_world.bin",
        "/hello_world.bin",
        8070,
        "127.0.0.1",
    )
    assert (plan.chip_family, plan.sha256_path, plan.flash_app) == (
        "ESP32",
        "/hello_world.bin.sha256",
        "factory",
    )
    assert plan.app_summary == site.root / "build" / "hello_world" / "app.json"
    assert json.loads(json.dumps(plan.to_json()))["url"] == plan.url


def test_plan__a_path_nginx_and_we_cannot_serve_literally_is_refused(tmp_path: Path) -> None:
    text = PROJECT_YAML.format(target="esp32", host="127.0.0.1", port=8070).replace(
        "/hello_world.bin", "/fw/../hello%20world.bin"
    )
    with pytest.raises(ConfigErrors, match=r"ota\.url: path '/fw/\.\./hello%20world\.bin' must"):
        loader.load(
            text, file="project.yaml", env={}, resolve_host=lambda h: h, project_dir=tmp_path
        )


# ---------------------------------------------------------------------------- content and clients


def test_check__bodies_are_exact(site: Site) -> None:
    content = serving.check(site.plan, emit=lambda _: None)
    digest = hashlib.sha256(site.image).hexdigest()
    assert set(content.resources) == {
        "/hello_world.bin",
        "/hello_world.bin.sha256",
        "/manifest.json",
    }
    assert content.resources["/hello_world.bin"].body == site.image
    assert content.resources["/hello_world.bin"].etag == f'"{digest}"'
    assert (
        content.resources["/hello_world.bin.sha256"].body == f"{digest}  hello_world.bin\n".encode()
    )
    assert json.loads(content.resources["/manifest.json"].body) == {
        "name": "ota-demo",
        "version": "1.0.1",
        "builds": [
            {
                "chipFamily": "ESP32",
                "ota": {
                    "path": "hello_world.bin",
                    "sha256": digest,
                    "md5": hashlib.md5(site.image).hexdigest(),
                    "size": len(site.image),
                    "secure_version": 0,
                },
            }
        ],
    }


def test_serve__curl_downloads_and_verifies(
    site: Site, live: tuple[int, LogLines], tmp_path: Path
) -> None:
    if shutil.which("curl") is None:
        pytest.skip(reason="curl not installed")
    port, _ = live
    out = tmp_path / "hello_world.bin"
    url = f"https://127.0.0.1:{port}"
    subprocess.run(
        ["curl", "-sSf", "--cacert", str(site.ca), f"{url}/hello_world.bin", "-o", str(out)],
        check=True,
        timeout=30,
    )
    assert out.read_bytes() == site.image
    # sha256sum -c reads the .sha256 body as it is served.
    sums = subprocess.run(
        ["curl", "-sSf", "--cacert", str(site.ca), f"{url}/hello_world.bin.sha256"],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    (tmp_path / "hello_world.bin.sha256").write_bytes(sums)
    check = subprocess.run(
        ["sha256sum", "-c", "hello_world.bin.sha256"], cwd=tmp_path, capture_output=True, text=True
    )
    assert check.stdout == "hello_world.bin: OK\n"


def test_serve__openssl_s_client_verifies_ip(site: Site, live: tuple[int, LogLines]) -> None:
    port, _ = live
    request = (
        b"GET /hello_world.bin.sha256 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    result = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-CAfile",
            str(site.ca),
            "-verify_return_error",
            "-verify_ip",
            "127.0.0.1",
            "-quiet",
        ],
        input=request,
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256(site.image).hexdigest()
    assert result.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
    assert result.stdout.endswith(f"\r\n\r\n{digest}  hello_world.bin\n".encode())


def test_serve__dns_host_with_hostname_checks(tmp_path: Path) -> None:
    named = make_site(tmp_path / "named", host="localhost")
    with running(named) as (port, _):
        result = subprocess.run(
            [
                "openssl",
                "s_client",
                "-connect",
                f"127.0.0.1:{port}",
                "-servername",
                "localhost",
                "-CAfile",
                str(named.ca),
                "-verify_return_error",
                "-verify_hostname",
                "localhost",
                "-quiet",
            ],
            input=b"HEAD /manifest.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            capture_output=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
        # Python checks the name too: the cert names localhost, not 127.0.0.1.
        conn = http.client.HTTPSConnection("localhost", port, context=context(named), timeout=10)
        conn.request("GET", "/hello_world.bin")
        assert (
            hashlib.sha256(conn.getresponse().read()).digest()
            == hashlib.sha256(named.image).digest()
        )
        conn.close()
        with pytest.raises(ssl.SSLCertVerificationError):
            get(named, port, "/manifest.json")


def test_serve__urllib_downloads(site: Site, live: tuple[int, LogLines]) -> None:
    port, lines = live
    url = f"https://127.0.0.1:{port}/hello_world.bin"
    with urllib.request.urlopen(url, context=context(site), timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(site.image))
        assert response.headers["ETag"] == f'"{hashlib.sha256(site.image).hexdigest()}"'
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.read() == site.image
    lines.wait_for(f"GET /hello_world.bin 200 {len(site.image)}B")


def test_serve__the_log_shows_the_whole_transfer_time(site: Site) -> None:
    """A client that takes its time: the line counts until it had every byte, not until the
    kernel took them (sendall returns when the bytes are buffered)."""
    with running(site) as (port, lines):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # hold little in the kernel
        tls = context(site).wrap_socket(raw, server_hostname="127.0.0.1")
        tls.sendall(b"GET /hello_world.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received, started = b"", time.monotonic()
        while chunk := tls.recv(4096):  # a board reads as it writes flash: a little at a time
            received += chunk
        took = time.monotonic() - started
        tls.close()
        line = lines.wait_for("GET /hello_world.bin 200")
    assert received.endswith(site.image)
    assert f" {len(site.image)}B " in line
    logged = float(line.rsplit(" ", 1)[1].removesuffix("ms")) / 1000
    assert logged > took / 2, (line, took)


# ----------------------------------------------------------------------- RFC 9110 semantics


def test_serve__head_is_200_with_the_length_esp_https_ota_needs(
    site: Site, live: tuple[int, LogLines]
) -> None:
    port, _ = live
    status, headers, body = get(site, live[0], "/hello_world.bin", method="HEAD")
    assert (status, headers["content-length"], body) == (200, str(len(site.image)), b"")
    # Range is defined for GET only; HEAD with Range still reports the whole length.
    status, headers, _ = get(site, port, "/hello_world.bin", {"Range": "bytes=0-9"}, "HEAD")
    assert (status, headers["content-length"]) == (200, str(len(site.image)))


SIZE = IMAGE_SIZE + 1360  # esptool's header, segment headers, padding, checksum and digest


@pytest.mark.parametrize(
    ("header", "status", "content_range", "first", "last"),
    [
        ("bytes=0-65535", 206, "bytes 0-65535/{n}", 0, 65535),
        ("bytes=65536-", 206, "bytes 65536-{l}/{n}", 65536, None),
        ("bytes=-100", 206, "bytes {s100}-{l}/{n}", -100, None),
        ("bytes=100-99999999", 206, "bytes 100-{l}/{n}", 100, None),
        ("bytes=0-0", 206, "bytes 0-0/{n}", 0, 0),
        ("BYTES = 5 - 9", 206, "bytes 5-9/{n}", 5, 9),
        ("bytes=99999999-", 416, "bytes */{n}", None, None),
        ("bytes=-0", 416, "bytes */{n}", None, None),
        ("bytes=5-1", 200, None, 0, None),  # invalid: ignored
        ("bytes=abc", 200, None, 0, None),
        ("items=0-5", 200, None, 0, None),
        ("bytes=0-1,4-5", 200, None, 0, None),  # several ranges: the whole body
    ],
)
def test_serve__range(
    site: Site,
    live: tuple[int, LogLines],
    header: str,
    status: int,
    content_range: str | None,
    first: int | None,
    last: int | None,
) -> None:
    n = len(site.image)
    got_status, headers, body = get(site, live[0], "/hello_world.bin", {"Range": header})
    assert got_status == status
    expected_range = content_range and content_range.format(n=n, l=n - 1, s100=n - 100)
    assert headers.get("content-range") == expected_range
    if first is None:
        assert body == b""
        assert headers["content-length"] == "0"
    else:
        end = None if last is None else last + 1
        assert body == site.image[first:end]
        assert headers["content-length"] == str(len(body))


def test_serve__if_range_never_splices_two_images(site: Site, live: tuple[int, LogLines]) -> None:
    port, _ = live
    etag = f'"{hashlib.sha256(site.image).hexdigest()}"'
    status, _, body = get(
        site, port, "/hello_world.bin", {"Range": "bytes=10-19", "If-Range": etag}
    )
    assert (status, body) == (206, site.image[10:20])
    for stale in ('"0000"', f"W/{etag}", "Wed, 21 Oct 2015 07:28:00 GMT"):
        status, _, body = get(
            site, port, "/hello_world.bin", {"Range": "bytes=10-19", "If-Range": stale}
        )
        assert (status, body) == (200, site.image)


def test_serve__conditionals(site: Site, live: tuple[int, LogLines]) -> None:
    port, _ = live
    etag = f'"{hashlib.sha256(site.image).hexdigest()}"'
    for tags in (etag, f'"x", W/{etag}', "*"):
        status, headers, body = get(site, port, "/hello_world.bin", {"If-None-Match": tags})
        assert (status, headers["etag"], body) == (304, etag, b"")
    assert get(site, port, "/hello_world.bin", {"If-None-Match": '"other"'})[0] == 200
    assert get(site, port, "/hello_world.bin", {"If-Match": '"other"'})[0] == 412


def test_serve__keep_alive_serves_several_requests_on_one_connection(
    site: Site, live: tuple[int, LogLines]
) -> None:
    conn = http.client.HTTPSConnection("127.0.0.1", live[0], context=context(site), timeout=10)
    conn.connect()
    first_socket = conn.sock
    done = 0
    for start in range(0, len(site.image), 400_000):  # esp_https_ota's partial download pattern
        conn.request(
            "GET", "/hello_world.bin", headers={"Range": f"bytes={start}-{start + 399_999}"}
        )
        response = conn.getresponse()
        assert response.status == 206
        assert response.read() == site.image[start : start + 400_000]
        done += 1
    conn.request("HEAD", "/hello_world.bin")
    conn.getresponse().read()
    assert conn.sock is first_socket and done == 4
    conn.close()


def test_serve__methods_other_than_get_and_head_are_405(
    site: Site, live: tuple[int, LogLines]
) -> None:
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW"):
        status, headers, body = get(site, live[0], "/hello_world.bin", method=method)
        assert (status, headers["allow"], body) == (405, "GET, HEAD", b"")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_respond__any_single_range_returns_exact_bytes(data: st.DataObject) -> None:
    body = bytes(range(256)) * 7
    first = data.draw(st.integers(0, len(body) - 1))
    last = data.draw(st.one_of(st.none(), st.integers(first, len(body) + 50)))
    spec = f"bytes={first}-" if last is None else f"bytes={first}-{last}"
    request = Request(
        method="GET", target="/f", version=(1, 1), headers={"host": "h", "range": spec}
    )
    response = respond(request, {"/f": resource(body, "application/octet-stream")})
    end = len(body) - 1 if last is None else min(last, len(body) - 1)
    assert response.status == 206
    assert bytes(response.body) == body[first : end + 1]
    assert ("Content-Range", f"bytes {first}-{end}/{len(body)}") in response.headers


@settings(max_examples=25, deadline=None)
@given(first=st.integers(0, SIZE - 1), length=st.integers(1, 300_000))
def test_serve__random_ranges_over_tls(
    site: Site, live: tuple[int, LogLines], first: int, length: int
) -> None:
    last = first + length - 1
    status, headers, body = get(
        site, live[0], "/hello_world.bin", {"Range": f"bytes={first}-{last}"}
    )
    end = min(last, len(site.image) - 1)
    assert (status, body) == (206, site.image[first : end + 1])
    assert headers["content-range"] == f"bytes {first}-{end}/{len(site.image)}"


@pytest.mark.parametrize(
    ("value", "size", "expected"),
    [
        ("bytes=0-", 10, ByteRange(0, 9)),
        ("bytes=-3", 10, ByteRange(7, 9)),
        ("bytes=-30", 10, ByteRange(0, 9)),
        ("bytes=9-9", 10, ByteRange(9, 9)),
        ("bytes=10-", 10, "unsatisfiable"),
        ("bytes=0-", 0, "unsatisfiable"),
        ("bytes=-1", 0, "unsatisfiable"),
        ("bytes=1-0", 10, None),
        ("bytes=-", 10, None),
        ("bytes=+1-2", 10, None),
        ("bytes 0-1", 10, None),
        ("bytes=0-1, ,", 10, ByteRange(0, 1)),
        (f"bytes=0-{'9' * 19}", 10, ByteRange(0, 9)),  # 19 digits: still a number
        (f"bytes=0-{'9' * 20}", 10, None),  # longer: ignored, never int()'s 4300-digit error
        (f"bytes=0-{'9' * 5000}", 10, None),
        (f"bytes={'9' * 5000}-", 10, None),
        (f"bytes=-{'9' * 5000}", 10, None),
        ("bytes=\u0663-\u0665", 10, None),  # Arabic-Indic digits are not ASCII digits
    ],
)
def test_parse_range__rfc9110(value: str, size: int, expected: object) -> None:
    assert parse_range(value, size) == expected


# ------------------------------------------------------------------------------- hostile input

HUGE = "9" * 5000  # past int()'s 4300-digit limit


def test_respond__an_over_long_range_number_is_ignored_not_raised() -> None:
    body = b"0123456789"
    for spec in (f"bytes=0-{HUGE}", f"bytes={HUGE}-", f"bytes=-{HUGE}", f"bytes=0-1{HUGE}"):
        headers = {"host": "h", "range": spec}
        request = Request(method="GET", target="/f", version=(1, 1), headers=headers)
        response = respond(request, {"/f": resource(body, "application/octet-stream")})
        assert (response.status, bytes(response.body)) == (200, body)


def test_serve__over_long_numbers_get_an_answer_and_no_traceback(
    site: Site, live: tuple[int, LogLines], monkeypatch: pytest.MonkeyPatch
) -> None:
    escaped: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", escaped.append)
    status, headers, body = get(site, live[0], "/hello_world.bin", {"Range": f"bytes=0-{HUGE}"})
    assert (status, body, "content-range" in headers) == (200, site.image, False)
    for length in (HUGE, "\u00b2"):  # "²".isdigit() is True, int("²") raises
        head = f"GET /f HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"
        reply = raw(site, live[0], head.encode("latin-1"))
        assert status_of(reply) == 400
    assert escaped == []


HOSTILE = [
    "/../certs/server_key.pem",
    "/%2e%2e/certs/server_key.pem",
    "/%2E%2E%2Fcerts%2Fserver_key.pem",
    "//hello_world.bin",
    "//etc/passwd",
    "/etc/passwd",
    "/certs/server_key.pem",
    "/server_key.pem",
    "/ca_key.pem",
    "/certs/ca_key.pem",
    "/hello_world.bin%00",
    "/hello_world.bin%00.sha256",
    "/" + "a" * 4000,
    "/..\\certs\\server_key.pem",
    "\\hello_world.bin",
    "/hello_world.bin/",
    "/hello_world.bin;x=1",
    "/hello_world.bin/..",
    "/%68ello_world.bin",
    "/h%C3%A9llo.bin",
    "/.sha256",
    "/manifest.json/..",
    "/manifest.json/",
    "/./hello_world.bin",
    "/build/hello_world/app.json",
    "/project.yaml",
    "/",
    "",
    "*",
    "hello_world.bin",
    "https://127.0.0.1/../certs/server_key.pem",
    "/hello_world.bin#x",
]


@pytest.mark.parametrize("target", HOSTILE)
def test_serve__hostile_paths_get_nothing(
    site: Site, live: tuple[int, LogLines], target: str
) -> None:
    request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    reply = raw(site, live[0], request.encode())
    assert status_of(reply) in (400, 404, 414), reply[:100]
    _, _, body = reply.partition(b"\r\n\r\n")
    assert body == b""
    key_body = b"".join(site.key_pem.splitlines()[1:-1])
    assert key_body[:40] not in reply and b"PRIVATE KEY" not in reply


def test_serve__raw_bytes_and_query_strings(site: Site, live: tuple[int, LogLines]) -> None:
    port, _ = live
    # Non-ASCII and control bytes in the request line are malformed, not looked up.
    for target in ("/h\xc3\xa9llo.bin".encode("latin-1"), b"/hello_world.bin\x00"):
        reply = raw(site, port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(reply) == 400
    # The query is ignored, as nginx's `location =` ignores it: the same image.
    reply = raw(
        site, port, b"GET /hello_world.bin?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status_of(reply) == 200 and reply.endswith(site.image)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 80 + b"\r\n", 431),
        (b"GET /hello_world.bin HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET /hello_world.bin HTTP/1.1\r\n\r\n", 400),
        (b"GET /hello_world.bin HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /hello_world.bin HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        (b"GET /hello_world.bin HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
        (b"GET  /hello_world.bin HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /hello_world.bin HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    ],
)
def test_serve__malformed_requests(
    site: Site, live: tuple[int, LogLines], request_bytes: bytes, status: int
) -> None:
    reply = raw(site, live[0], request_bytes)
    assert status_of(reply) == status
    assert b"Connection: close" in reply


# --------------------------------------------------------------------------------------- load


def _download(site: Site, port: int) -> bool:
    status, _, body = get(site, port, "/hello_world.bin")
    return status == 200 and body == site.image


def _slow_reader(site: Site, port: int) -> bool:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context(site), timeout=30)
    conn.request("GET", "/hello_world.bin")
    response = conn.getresponse()
    parts = []
    for _ in range(6):
        parts.append(response.read(16384))
        time.sleep(0.1)
    parts.append(response.read())
    conn.close()
    return b"".join(parts) == site.image


def _quitter(site: Site, port: int) -> bool:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context(site), timeout=10)
    conn.request("GET", "/hello_world.bin")
    conn.getresponse().read(100_000)
    conn.sock.close()  # mid-transfer, no TLS close_notify
    return True


def test_serve__under_load_every_completed_download_is_exact(site: Site) -> None:
    # 230 clients share 127.0.0.1 here: lift the per-address cap (32) that a LAN would have.
    limits = Limits(handshake_timeout=1.5, per_client=1024)
    with running(site, limits=limits) as (port, lines):
        silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]  # no ClientHello
        started = time.monotonic()
        assert _download(site, port)  # not held up by the silent clients
        assert time.monotonic() - started < 1.0
        with ThreadPoolExecutor(max_workers=230) as pool:
            jobs = [pool.submit(_download, site, port) for _ in range(200)]
            jobs += [pool.submit(_slow_reader, site, port) for _ in range(20)]
            jobs += [pool.submit(_quitter, site, port) for _ in range(10)]
            results = [job.result(timeout=60) for job in jobs]
        assert all(results)
        for conn in silent:
            conn.settimeout(5)
            assert conn.recv(1) == b""  # dropped after the handshake timeout
            conn.close()
        assert _download(site, port)
        assert sum("TLS handshake failed: timed out" in line for line in lines) == 3


def _trickle(sock: socket.socket, data: bytes, seconds: float) -> float:
    """Send `data` a byte every 0.1 s until the server hangs up; how long that took."""
    started = time.monotonic()
    with pytest.raises(OSError):  # reset, broken pipe or TLS EOF: whichever comes first
        for byte in data * 100:
            sock.sendall(bytes([byte]))
            time.sleep(0.1)
            assert time.monotonic() - started < seconds, "the trickling client was never dropped"
        sock.settimeout(5)
        if sock.recv(1) == b"":
            raise ConnectionResetError
    return time.monotonic() - started


def test_serve__a_trickling_client_is_dropped_at_the_head_deadline(site: Site) -> None:
    limits = Limits(handshake_timeout=5, idle_timeout=5, head_timeout=1.0)
    with running(site, limits=limits) as (port, lines), ThreadPoolExecutor(2) as pool:
        plain = socket.create_connection(("127.0.0.1", port), timeout=10)
        tls = context(site).wrap_socket(plain, server_hostname="127.0.0.1")
        in_head = pool.submit(_trickle, tls, b"GET /hello_world.bin HTTP/1.1\r\nX-A: b", 4)
        hello = socket.create_connection(("127.0.0.1", port), timeout=10)
        in_handshake = pool.submit(_trickle, hello, b"\x16\x03\x01\x02\x00\x01", 4)
        assert _download(site, port)  # served meanwhile
        assert 0.9 < in_head.result(timeout=10) < 2.5
        assert 0.9 < in_handshake.result(timeout=10) < 2.5
        tls.close()
        hello.close()
    assert sum("dropped: no request head within 1 s" in line for line in lines) == 1
    assert sum("TLS handshake failed: not done within 1 s" in line for line in lines) == 1


class _FailingAccept:
    """A listen socket whose first accept() calls fail like a process out of descriptors."""

    def __init__(self, real: socket.socket, failures: int) -> None:
        self.real, self.failures = real, failures
        self.failed = threading.Event()

    def accept(self) -> tuple[socket.socket, object]:
        if self.failures > 0:
            self.failures -= 1
            self.failed.set()
            raise OSError(24, "Too many open files")
        return self.real.accept()

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


def test_serve__accept_errors_are_noted_once_a_second_and_serving_goes_on(site: Site) -> None:
    content = serving.check(site.plan, emit=lambda _: None)
    where, lines = cert_files(site.plan.certs_dir), []
    real = socket.create_server(("127.0.0.1", 0), backlog=16)
    # Three failures, 0.1 s apart: all within the one second a note covers.
    failing = _FailingAccept(real, failures=3)
    server = Server(
        resources=content.resources,
        cert=where.server_cert,
        key=where.server_key,
        bind="127.0.0.1",
        port=0,
        listener=lambda kind, item: lines.append(str(item)),
        listening=failing,  # type: ignore[arg-type]
    )
    port = server.port
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    assert failing.failed.wait(5)  # accept() has failed at least once before the download
    try:
        assert _download(site, port)  # queued in the backlog until accept() recovers
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=5)
    notes = [line for line in lines if "accept failed" in line]
    assert notes == ["accept failed: too many open files; still serving, retrying"]


def test_serve__the_connection_cap_fits_under_the_descriptor_limit(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    import resource

    content = serving.check(site.plan, emit=lambda _: None)
    where = cert_files(site.plan.certs_dir)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (256, 4096))
    server = Server(
        resources=content.resources,
        cert=where.server_cert,
        key=where.server_key,
        bind="127.0.0.1",
        port=0,
    )
    server.close()
    assert server.connections == 256 - 64


# ------------------------------------------------------------------------------------ refusals


def test_refuse__an_unloadable_server_key_is_not_blamed_on_ota_bind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_site(tmp_path)
    content = serving.check(other.plan, emit=lambda _: None)
    monkeypatch.setattr(engines, "check", lambda plan: content)  # key replaced after the check
    key = cert_files(other.plan.certs_dir).server_key
    key.write_bytes(key.read_bytes()[:60] + b"garbage\n-----END PRIVATE KEY-----\n")
    with pytest.raises(serving.ServeError) as caught:
        engines.run(replace(other.plan, port=0))
    message = str(caught.value)
    assert message.startswith(
        f"cannot load the server certificate/key from {other.plan.certs_dir}/ ("
    )
    assert message.endswith("); run `doit certs`")
    assert "ota.bind" not in message


def test_refuse__busy_port(site: Site) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(serving.ServeError) as caught:
            engines.run(replace(site.plan, port=port))
    assert str(caught.value) == (
        f"port {port} on 127.0.0.1 is already in use by another process; find it with "
        f"`ss -ltnp 'sport = :{port}'`, stop it, or change ota.url's port"
    )


def test_refuse__cert_for_another_host(tmp_path: Path) -> None:
    other = make_site(tmp_path, host="10.0.0.9", cert_host="127.0.0.1")
    with pytest.raises(serving.ServeError) as caught:
        serving.check(other.plan)
    assert str(caught.value) == (
        "cannot serve https://10.0.0.9:8070/hello_world.bin: server cert covers '127.0.0.1' "
        "but the OTA URL host is '10.0.0.9'; run `doit certs` to reissue"
    )


def _release(site: Site) -> None:
    project = loader.load(
        (site.root / "project.yaml").read_text(),
        file="project.yaml",
        env={},
        resolve_host=lambda h: h,
        project_dir=site.root,
    )
    plan = releasing.plan(project, Paths(site.root))
    assert plan is not None
    releasing.record_release(plan)


def test_refuse__image_for_another_chip(tmp_path: Path) -> None:
    other = make_site(tmp_path, image=cached_image("esp32c3", size=4096), release=False)
    with pytest.raises(serving.ServeError, match=r"^no release hello_world 1\.0\.1 to serve"):
        serving.check(other.plan)
    with pytest.raises(releasing.ReleaseError) as caught:
        _release(other)
    assert str(caught.value) == (
        "cannot release hello_world.bin: Mismatch chip id, expected 0, found 5 "
        "(the image is for esp32c3, project.yaml says esp32)"
    )


def test_refuse__corrupted_image(tmp_path: Path) -> None:
    data = bytearray(cached_image(size=4096))
    data[3000] ^= 0xFF
    other = make_site(tmp_path, image=bytes(data), release=False)
    with pytest.raises(releasing.ReleaseError) as caught:
        _release(other)
    assert str(caught.value).startswith("cannot release hello_world.bin: Checksum failed. Calc")


def test_refuse__image_changed_since_the_build(tmp_path: Path) -> None:
    other = make_site(tmp_path, image=cached_image(size=4096), release=False)
    image_file = other.root / "build" / "hello_world" / "hello_world.bin"
    image_file.write_bytes(cached_image(size=4100))
    with pytest.raises(
        releasing.ReleaseError,
        match=r"^cannot release hello_world\.bin: it changed since `doit build:hello_world`",
    ):
        _release(other)


def test_refuse__a_released_file_changed_afterwards(tmp_path: Path) -> None:
    other = make_site(tmp_path, image=cached_image(size=4096))
    released = other.root / "releases" / "hello_world" / "1.0.1" / "hello_world.bin"
    released.chmod(0o644)
    released.write_bytes(cached_image(size=4100))
    with pytest.raises(serving.ServeError) as caught:
        serving.check(other.plan)
    assert str(caught.value) == (
        f"cannot serve https://127.0.0.1:8070/hello_world.bin: {released}: its SHA-256 is not "
        "the one release.json records; a release never changes: restore it from where "
        "releases/ is kept"
    )


def test_refuse__embedded_ca_is_not_the_current_ca(tmp_path: Path) -> None:
    other = make_site(tmp_path, image=cached_image(size=4096))
    factory = other.root / "build" / "factory" / "app.json"
    outputs.write(factory, replace(outputs.read(factory), ca_sha256="ab" * 32))
    current = hashlib.sha256(other.ca.read_bytes()).hexdigest()
    with pytest.raises(serving.ServeError) as caught:
        serving.check(other.plan)
    assert str(caught.value) == (
        "the CA embedded in app 'factory' (SHA-256 abababababababab…) is not the CA that signed "
        f"the server cert (certs/ca_cert.pem, SHA-256 {current[:16]}…); "
        "run `doit build:factory` and flash it over serial"
    )


def test_refuse__not_built_yet(tmp_path: Path) -> None:
    other = make_site(tmp_path, image=cached_image(size=4096))
    other.plan.app_summary.unlink()
    with pytest.raises(serving.ServeError) as caught:
        serving.check(other.plan)
    assert (
        str(caught.value)
        == f"{other.plan.app_summary}: missing; run `doit build:hello_world` first"
    )


# ------------------------------------------------------------------------------ board warnings


def flashed(
    bootloader: str = "b" * 64, table: str = "p" * 64
) -> tuple[tuple[str, FlashedImage], ...]:
    return (
        ("bootloader", FlashedImage(offset=0x1000, sha256=bootloader, size=1)),
        ("partition-table", FlashedImage(offset=0x8000, sha256=table, size=1)),
    )


BOARD = BoardRecord(
    chip="esp32",
    mac="24:0a:c4:00:00:01",
    flash_size="4MB",
    flash_mode="dio",
    images=flashed(),
    app=RunningApp(name="factory", version="1.0.0", project_name="simple_ota"),
    ota_url="https://127.0.0.1:8070/hello_world.bin",
)


def test_warn__nothing_for_a_matching_board(tmp_path: Path) -> None:
    other = make_site(tmp_path, image=cached_image(size=4096))
    ca = hashlib.sha256(other.ca.read_bytes()).hexdigest()
    record.write(other.plan.boards_dir, replace(BOARD, ca_sha256=ca))
    notes: list[str] = []
    assert serving.check(other.plan, emit=notes.append).warnings == ()
    assert notes == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"images": flashed(bootloader="c" * 64)},
            "board 24:0a:c4:00:00:01: the bootloader of app 'hello_world' differs from the one "
            "flashed over serial (cccccccccccccccc… -> bbbbbbbbbbbbbbbb…); OTA cannot deliver it: "
            "run `doit flash`",
        ),
        (
            {"images": flashed(table="q" * 64)},
            "board 24:0a:c4:00:00:01: the partition table of app 'hello_world' differs from the "
            "one flashed over serial (qqqqqqqqqqqqqqqq… -> pppppppppppppppp…); OTA cannot "
            "deliver it: run `doit flash`",
        ),
        (
            {"flash_size": "2MB"},
            "board 24:0a:c4:00:00:01: the flash size of app 'hello_world' differs from the one "
            "flashed over serial (2MB -> 4MB); OTA cannot deliver it: run `doit flash`",
        ),
        (
            {"flash_mode": "qio"},
            "board 24:0a:c4:00:00:01: the flash mode of app 'hello_world' differs from the one "
            "flashed over serial (qio -> dio); OTA cannot deliver it: run `doit flash`",
        ),
        (
            {"ca_sha256": "ab" * 32},
            "board 24:0a:c4:00:00:01: its embedded CA (SHA-256 abababababababab…) did not sign "
            "this server's cert; it will refuse the download: run `doit flash`",
        ),
        (
            {"ota_url": "https://10.0.0.5:8070/hello_world.bin"},
            "board 24:0a:c4:00:00:01: fetches 'https://10.0.0.5:8070/hello_world.bin' but this "
            "server is 'https://127.0.0.1:8070/hello_world.bin' (an `auto` host may have changed); "
            "it will not find this server: set $OTA_HOST or run `doit flash`",
        ),
    ],
)
def test_warn__what_ota_cannot_deliver(
    tmp_path: Path, changes: dict[str, object], expected: str
) -> None:
    other = make_site(tmp_path, image=cached_image(size=4096))
    boards = other.plan.boards_dir
    record.write(boards, replace(BOARD, **changes))  # type: ignore[arg-type]
    (boards / "broken.json").write_text("{")
    notes: list[str] = []
    content = serving.check(other.plan, emit=notes.append)
    assert content.warnings == (expected,)
    assert notes[0].startswith(f"{boards / 'broken.json'}: cannot be read (not JSON: ")
    assert notes[0].endswith("; run doit flash (this board is not checked)")
    assert notes[1:] == [expected]


@pytest.mark.parametrize(
    ("project_name", "compares", "warned"),
    [
        ("hello_world", True, True),  # the board runs this app, whose code compares versions
        ("hello_world", False, False),  # the same app, which installs its own version again
        ("simple_ota", True, False),  # another app runs there: its code decides, not this one's
    ],
)
def test_warn__same_version_only_where_the_boards_app_compares_versions(
    tmp_path: Path, project_name: str, compares: bool, warned: bool
) -> None:
    other = make_site(tmp_path, image=cached_image(size=4096))
    code = app_code.facts([], {}, examples_common=False)
    summary = replace(
        outputs.read(other.plan.app_summary), code=replace(code, compares_version=compares)
    )
    image = AppImage(
        name="x.bin", size=1, sha256="", chip_id=0, project_name="hello_world", version="1.0.1"
    )
    board = replace(
        BOARD, app=RunningApp(name="factory", version="1.0.1", project_name=project_name)
    )
    notes = serving.board_warnings(other.plan, summary, image, frozenset(), [board])
    expected = (
        "board 24:0a:c4:00:00:01: already runs version '1.0.1', and app 'hello_world' compares "
        "versions before writing, so it refuses this image: bump apps.hello_world.version"
    )
    assert (expected in notes) is warned


def test_warn__a_board_record_of_another_schema_is_skipped(tmp_path: Path) -> None:
    other = make_site(tmp_path, image=cached_image(size=4096))
    other.plan.boards_dir.mkdir(parents=True)
    old = other.plan.boards_dir / "240ac4000001.json"
    old.write_text(json.dumps({"chip": "esp32", "mac": "24:0a:c4:00:00:01"}))
    notes: list[str] = []
    serving.check(other.plan, emit=notes.append)
    assert notes == [
        f"{old}: not a board record of schema 1 (no schema); run doit flash "
        "(this board is not checked)"
    ]


# -------------------------------------------------------------------------------- run() itself


def test_run__serves_until_stop_and_prints_the_banner(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    port = serve_one_request(site, replace(site.plan, port=0, log_format="json"))
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    notes = [e["message"] for e in events if e.get("event") == "note"]
    assert notes[0] == (
        f"serving https://127.0.0.1:8070/hello_world.bin on 127.0.0.1:{port} "
        "(also /hello_world.bin.sha256, /manifest.json)"
    )
    assert notes[2] == f"sha256 {hashlib.sha256(site.image).hexdigest()}"
    assert notes[3].startswith("server cert SHA-256 ")
    request = next(e for e in events if e.get("path") == "/hello_world.bin.sha256")
    assert (request["method"], request["status"], request["bytes"]) == ("GET", 200, 82)


def test_run__ctrl_c_stops_cleanly(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    ready = threading.Event()
    timer = threading.Thread(target=lambda: ready.wait(10) and _thread.interrupt_main())
    timer.start()
    engines.run(replace(site.plan, port=0), ready=ready)  # returns normally: doit exits 0
    timer.join()
    assert capsys.readouterr().out.splitlines()[-1] == "stopped (Ctrl-C)"


def test_check__warns_when_the_served_image_holds_the_wifi_password(site: Site) -> None:
    built = outputs.read(site.plan.app_summary)
    outputs.write(site.plan.app_summary, replace(built, holds_secret=True))
    notes: list[str] = []
    content = serving.check(site.plan, emit=notes.append)
    assert any("embeds the Wi-Fi password (apps.hello_world is an OTA client" in n for n in notes)
    assert content.warnings == tuple(notes)
