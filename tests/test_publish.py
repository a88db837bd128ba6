"""doit publish: the static folder and nginx config; a real nginx serving it on loopback."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from esp_ota_doit.errors import ToolError
from esp_ota_doit.paths import cert_files
from esp_ota_doit.serve import publish, serving

from tests.test_serve import Site, cached_image, make_site

NGINX = publish.nginx_binary()
needs_nginx = pytest.mark.skipif(
    NGINX is None, reason="nginx not installed (apt-get install nginx-light)"
)
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    # As root, nginx's workers run as www-data/nobody: the site must sit where others may enter
    # (pytest's own temp root is 0700).
    folder = Path(tempfile.mkdtemp(prefix="esp-ota-site-"))
    folder.chmod(0o711)
    made = make_site(folder / "project", image=cached_image(size=300_000))
    made.root.chmod(0o711)
    yield Site(root=made.root, plan=replace(made.plan, port=free_port()), image=made.image)
    shutil.rmtree(folder, ignore_errors=True)


def test_publish__exactly_the_allowlist_and_never_a_key(site: Site) -> None:
    stale = site.plan.publish_dir / "www" / "old" / "firmware.bin"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an image from an earlier URL path")
    layout = publish.write(site.plan)
    served = sorted(p.relative_to(layout.root).as_posix() for p in layout.root.rglob("*"))
    assert served == ["hello_world.bin", "hello_world.bin.sha256", "manifest.json"]
    content = serving.check(site.plan, emit=lambda _: None)
    for path, body in content.resources.items():
        assert (layout.root / path.lstrip("/")).read_bytes() == body.body
    everything = [p for p in site.plan.publish_dir.rglob("*") if p.is_file()]
    assert {p.name for p in everything} == {*served, "site.conf", "nginx.conf"}
    key = cert_files(site.plan.certs_dir).server_key
    assert not any(b"PRIVATE KEY" in p.read_bytes() for p in everything)
    assert f"ssl_certificate_key {key.resolve()};" in layout.site_conf.read_text()
    assert publish.targets(site.plan) == [*layout.files, layout.site_conf, layout.nginx_conf]


def test_publish__second_write_changes_nothing(site: Site) -> None:
    layout = publish.write(site.plan)
    files = [*layout.files, layout.site_conf, layout.nginx_conf]
    before = [p.stat().st_mtime_ns for p in files]
    publish.write(site.plan)
    assert [p.stat().st_mtime_ns for p in files] == before


def test_publish__site_config_shape(site: Site) -> None:
    text = publish.write(site.plan).site_conf.read_text()
    for line in (
        f"listen 127.0.0.1:{site.plan.port} ssl;",
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "autoindex off;",
        "max_ranges 1;",
        "location = /hello_world.bin {",
        "location = /hello_world.bin.sha256 {",
        "location = /manifest.json {",
        'add_header Cache-Control "no-cache" always;',
        "return 404;",
    ):
        assert line in text


@needs_nginx
def test_publish__nginx_accepts_the_config(site: Site) -> None:
    layout = publish.write(site.plan)
    (layout.prefix / "temp").mkdir(exist_ok=True)
    assert NGINX is not None
    result = subprocess.run(
        publish._command(NGINX, layout, "-t"), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.fixture
def nginx(site: Site) -> Iterator[int]:
    if NGINX is None:
        pytest.skip(reason="nginx not installed (apt-get install nginx-light)")
    ready, stop, failures = threading.Event(), threading.Event(), []

    def target() -> None:
        try:
            publish.run_nginx(site.plan, ready=ready, stop=stop)
        except Exception as err:  # reported by the test below
            failures.append(err)
            ready.set()

    thread = threading.Thread(target=target)
    thread.start()
    assert ready.wait(20)
    assert failures == []
    yield site.plan.port
    stop.set()
    thread.join(20)
    assert not thread.is_alive()
    assert not (site.plan.serve_nginx_dir / "nginx" / "nginx.pid").exists()


def curl(site: Site, port: int, path: str, *extra: str) -> tuple[int, bytes]:
    result = subprocess.run(
        [
            "curl",
            "-s",
            "--cacert",
            str(site.ca),
            "-w",
            "\n%{http_code}",
            *extra,
            f"https://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        timeout=30,
        check=True,
    )
    body, _, code = result.stdout.rpartition(b"\n")
    return int(code), body


@needs_curl
def test_nginx__serves_the_image_ranges_and_nothing_else(site: Site, nginx: int) -> None:
    assert curl(site, nginx, "/hello_world.bin") == (200, site.image)
    assert curl(site, nginx, "/hello_world.bin", "-r", "100-199") == (206, site.image[100:200])
    digest = hashlib.sha256(site.image).hexdigest()
    assert curl(site, nginx, "/hello_world.bin.sha256") == (
        200,
        f"{digest}  hello_world.bin\n".encode(),
    )
    status, body = curl(site, nginx, "/manifest.json")
    assert status == 200 and digest.encode() in body
    for path in (
        "/nope.bin",
        "/",
        "/server_key.pem",
        "/certs/server_key.pem",
        "/nginx.conf",
        "/../certs/server_key.pem",
        "/%2e%2e/nginx/site.conf",
        "/www/manifest.json",
    ):
        status, body = curl(site, nginx, path, "--path-as-is")
        assert status in (400, 404), path
        assert b"PRIVATE KEY" not in body


def test_nginx__busy_port_is_refused_with_the_fix(site: Site) -> None:
    if NGINX is None:
        pytest.skip(reason="nginx not installed (apt-get install nginx-light)")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", site.plan.port))
        taken.listen()
        with pytest.raises(
            serving.ServeError, match=r"^port \d+ on 127\.0\.0\.1 is already in use"
        ):
            publish.run_nginx(site.plan)


def test_nginx__missing_binary_says_how_to_install(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publish, "nginx_binary", lambda: None)
    with pytest.raises(ToolError) as caught:
        publish.run_nginx(site.plan)
    assert str(caught.value) == (
        "nginx not installed (apt-get install nginx-light); or serve with --engine python"
    )


def test_publish__through_doit_after_a_build(built: Path) -> None:
    from tests.doitrun import run

    code, results = run(built, "publish")
    assert code == 0, results
    www = built / "build" / "publish" / "www"
    assert sorted(p.name for p in www.iterdir()) == [
        "hello_world.bin",
        "hello_world.bin.sha256",
        "manifest.json",
    ]
    assert run(built, "publish")[1]["publish"] == "up-to-date"


def test_nginx__workers_never_run_as_root(site: Site) -> None:
    text = publish.write(site.plan).nginx_conf.read_text()
    assert "user root" not in text
    if os.geteuid() == 0:
        assert any(f"user {name} " in text for name in ("www-data", "nginx", "nobody"))


@needs_nginx
def test_nginx__dies_with_a_killed_doit_serve(site: Site) -> None:
    script = (
        "import sys, pickle; from esp_ota_doit import publish; "
        "publish.run_nginx(pickle.loads(bytes.fromhex(sys.argv[1])))"
    )
    import pickle

    child = subprocess.Popen(
        [sys.executable, "-c", script, pickle.dumps(site.plan).hex()],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert child.stdout is not None
    child.stdout.readline()  # the banner: nginx is listening
    child.kill()  # kill -9 of the serving process
    child.wait(10)
    for _ in range(100):  # bounded: the port must come free once nginx followed its parent
        try:
            socket.create_connection(("127.0.0.1", site.plan.port), timeout=0.2).close()
        except OSError:
            break
        threading.Event().wait(0.1)
    else:
        pytest.fail("nginx outlived the killed doit serve")


def _fetch(ca: Path, port: int, path: str) -> tuple[int, str, bytes]:
    import http.client
    import ssl

    context = ssl.create_default_context(cafile=str(ca))
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        connection.close()


def _served_by(
    plan: serving.ServePlan, ca: Path, paths: list[str]
) -> dict[str, tuple[int, str, bytes]]:
    """What `doit serve --engine <plan.engine>` answers for each path."""
    from esp_ota_doit.serve import engines

    ready, stop, failures = threading.Event(), threading.Event(), []

    def target() -> None:
        try:
            engines.run(plan, ready=ready, stop=stop)
        except Exception as err:  # reported below
            failures.append(err)
            ready.set()

    thread = threading.Thread(target=target)
    thread.start()
    try:
        assert ready.wait(20) and failures == []
        return {path: _fetch(ca, plan.port, path) for path in paths}
    finally:
        stop.set()
        thread.join(20)


@needs_nginx
def test_engines__both_serve_exactly_the_releases_files(tmp_path: Path) -> None:
    """Three releases with patches: the built-in server, nginx (serve) and publish's folder hold
    the same URL paths with the same bytes and types; serving with nginx leaves publish alone."""
    from esp_ota_doit.config import loader
    from esp_ota_doit.paths import Paths

    from tests.test_release import _delta_site

    folder = Path(tempfile.mkdtemp(prefix="esp-ota-engines-"))
    folder.chmod(0o711)
    try:
        root = _delta_site(folder)
        for path in [root, *root.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        text = (root / "project.yaml").read_text()
        project = loader.load(
            text, file="project.yaml", env={}, resolve_host=lambda h: h, project_dir=root
        )
        plan = replace(serving.plan(project, Paths(root)), port=free_port())
        content = serving.check(plan, emit=lambda _: None)
        paths = sorted(content.resources)
        assert "/hello_world.bin.patch" in paths and len(paths) == 6
        ca = cert_files(plan.certs_dir).ca_cert
        answers = {
            engine: _served_by(replace(plan, engine=engine), ca, [*paths, "/nope.patch"])
            for engine in ("python", "nginx")
        }
        assert not plan.publish_dir.exists()  # serve --engine nginx never writes publish's files
        for path in paths:
            status, mime, body = answers["python"][path]
            assert (status, body) == (200, content.resources[path].body)
            n_status, n_mime, n_body = answers["nginx"][path]
            assert (n_status, n_body) == (200, body)
            assert n_mime.replace(" ", "") == mime.replace(" ", ""), path
        assert answers["python"]["/nope.patch"][0] == answers["nginx"]["/nope.patch"][0] == 404
        layout = publish.write(plan)
        published = sorted(
            "/" + p.relative_to(layout.root).as_posix() for p in layout.root.rglob("*")
        )
        assert published == paths
    finally:
        shutil.rmtree(folder, ignore_errors=True)
