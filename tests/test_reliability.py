"""Reliability under hostile or unlucky conditions: an oversized project.yaml, empty option
values, a run that waited for the project lock while project.yaml was edited.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from doit.cmd_base import ModuleTaskLoader
from doit.doit_cmd import DoitMain
from esp_ota_doit import graph, wiring
from esp_ota_doit.paths import cert_files

from tests.doitrun import doit_process, edit, run


def test_project_yaml__over_1_mib_is_refused_at_once(project_dir: Path) -> None:
    with (project_dir / "project.yaml").open("a") as handle:
        line = "# " + "x" * 98 + "\n"
        handle.write(line * 50_000)  # 5 MB of comments
    started = time.monotonic()
    result = doit_process(project_dir, "list")
    assert time.monotonic() - started < 10
    assert result.returncode == 3
    assert result.stderr == (
        "ERROR: project.yaml: 4.8 MiB is over the 1 MiB a project.yaml may be; it holds "
        "settings only (keep logs and data elsewhere)\n"
    )


def test_project_yaml__a_fifo_is_refused_not_waited_on(project_dir: Path) -> None:
    (project_dir / "project.yaml").unlink()
    os.mkfifo(project_dir / "project.yaml")
    result = doit_process(project_dir, "list", timeout=30)
    assert result.returncode == 3
    assert result.stderr == (
        "ERROR: project.yaml: is not a regular file; it must be the YAML file\n"
    )


def test_load_project__one_text_per_run(project_dir: Path) -> None:
    """Every task creator of one run plans from the project.yaml read when the run started
    working: an edit while it loads or runs does not mix two versions in one plan."""
    first = wiring.load_project()
    edit(project_dir, "version: 1.0.1}", "version: 1.0.2}")
    assert wiring.load_project() is first
    wiring.release_lock()  # the run ends; the next one reads the edited file
    assert wiring.load_project().app("hello_world").version == "1.0.2"


def test_lock__a_run_that_waited_plans_from_the_edited_file(project_dir: Path) -> None:
    """A run that waited for the project lock reads project.yaml once it has the lock: what it
    renders is the text edited while it waited, never the one there when it started."""
    holder = os.open(project_dir, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        waiting = subprocess.Popen(
            [sys.executable, "-m", "doit", "render:sdkconfig-hello_world"],
            cwd=project_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert waiting.stderr is not None
        line = waiting.stderr.readline()  # it has started and waits for the lock
        assert line == f"warning: waiting for another doit run in {project_dir} to finish\n"
        edit(project_dir, "version: 1.0.1}", "version: 9.9.9}")
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, out + err
    assert "Traceback" not in err
    rendered = (project_dir / "build/generated/hello_world.sdkconfig.defaults").read_text()
    assert 'CONFIG_APP_PROJECT_VER="9.9.9"' in rendered and "1.0.1" not in rendered


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["list"], "render "),
        (["list", "--all"], "render:partitions"),
        (["help"], "help <task-name>"),
        (["help", "build"], "Build every app"),
        (["info", "render:partitions"], "partitions.csv"),
    ],
)
def test_lock__reading_commands_answer_while_a_run_holds_it(
    project_dir: Path, command: list[str], shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """list, help and info never wait for (nor take) the lock a running build holds."""
    holder = os.open(project_dir, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # as a running `doit build` holds it
    try:
        codes: list[int] = []
        answering = threading.Thread(
            target=lambda: codes.append(DoitMain(ModuleTaskLoader(graph)).run(command)),
            daemon=True,  # one that waits for the lock would wait forever
        )
        answering.start()
        answering.join(timeout=30)
        assert not answering.is_alive(), "it waits for the lock"
        out, err = capsys.readouterr()
        assert codes[0] in (0, 1), out + err  # doit info: 1 for a task that is not up to date
        assert "waiting for another doit run" not in err
        assert shown in out
        with pytest.raises(BlockingIOError):  # still the other run's
            fcntl.flock(os.open(project_dir, os.O_RDONLY), fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(holder)


def test_lock__a_run_plans_from_the_text_read_under_the_lock(
    project_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a reading command read without the lock is not what a run acts on."""
    assert DoitMain(ModuleTaskLoader(graph)).run(["list"]) == 0
    edit(project_dir, "version: 1.0.1}", "version: 9.9.9}")
    code, results = run(project_dir, "render:sdkconfig-hello_world")
    assert (code, results["render:sdkconfig-hello_world"]) == (0, "success")
    rendered = (project_dir / "build/generated/hello_world.sdkconfig.defaults").read_text()
    assert 'CONFIG_APP_PROJECT_VER="9.9.9"' in rendered


def test_lock__a_run_in_process_takes_it(project_dir: Path) -> None:
    """What acts (here doit's default command) takes the lock before it reads project.yaml."""
    assert DoitMain(ModuleTaskLoader(graph)).run(["-n", "1", "render:partitions"]) == 0
    other = os.open(project_dir, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(other)


# --- a board that dies in the middle of `doit flash` ------------------------------------------

_FLASH_DEFL_DATA = b"\xc0\x00\x11"  # SLIP frame start, request, ESP_FLASH_DEFL_DATA


class _DyingLink:
    """A TCP hop between esptool and the virtual board that dies, and stops listening, after
    the board has taken a few compressed flash blocks: a board whose USB port went away."""

    def __init__(self, board_port: int, blocks: int = 2) -> None:
        import socket
        import threading

        self._board = board_port
        self._blocks = blocks
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.died = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import socket
        import threading

        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        board = socket.create_connection(("127.0.0.1", self._board))
        seen = 0

        def backwards() -> None:
            try:
                while data := board.recv(65536):
                    client.sendall(data)
            except OSError:
                pass

        threading.Thread(target=backwards, daemon=True).start()
        try:
            while data := client.recv(65536):
                seen += data.count(_FLASH_DEFL_DATA)
                if seen >= self._blocks:
                    break
                board.sendall(data)
        except OSError:
            pass
        self.died.set()
        self.listener.close()  # the port is gone: reconnecting is refused
        for sock in (client, board):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_flash__a_board_that_dies_mid_write_is_said_gone(built: Path) -> None:
    from esp_ota_doit.device import flash
    from esp_ota_doit.device.esplink import Link
    from esp_ota_doit.errors import DeviceError
    from esp_ota_doit.paths import Paths
    from esp_ota_doit.rehearsal import virtual_board

    plan = flash.plan(wiring.load_project(), Paths(built))
    with virtual_board.VirtualBoard(
        built / "build/virtual/esp32-flash.bin", target="esp32", flash_size=4 * 1024 * 1024
    ) as board:
        board_port = int(board.port.rsplit(":", 1)[1])
        dying = _DyingLink(board_port)
        link = Link(port=f"socket://127.0.0.1:{dying.port}", resettable=False, fixed_baud=True)
        try:
            flash.write(plan, port=link)
        except DeviceError as error:
            message = str(error)
        else:
            raise AssertionError("the write should have failed")
    assert dying.died.is_set()
    assert message.startswith(f"the board on {link.port} went away while ")
    assert "being written (it stopped answering: " in message
    assert message.endswith(
        "reconnect it (its port may come back under another name) and run `doit flash` again: "
        "it rewrites whatever differs"
    )
    assert "busy" not in message and "\n" not in message


# --- downloads aborted mid-body release their thread and socket at once ----------------------


def _stalled(port: int, tls_context: object, source: str) -> object:
    import socket

    plain = socket.socket()
    plain.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # the body cannot all fit
    plain.bind((source, 0))
    plain.settimeout(30)
    plain.connect(("127.0.0.1", port))
    tls = tls_context.wrap_socket(plain, server_hostname="127.0.0.1")  # type: ignore[attr-defined]
    tls.sendall(b"GET /hello_world.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    received = b""
    while len(received) < 20000:  # well into the body
        received += tls.recv(8192)
    return tls


def _abort(tls: object, *, reset: bool) -> None:
    """Half the clients close (FIN), half reset (RST, SO_LINGER 0) mid-body."""
    import socket
    import struct

    if reset:
        tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # type: ignore[attr-defined]
    else:
        socket.socket.shutdown(tls, socket.SHUT_WR)  # type: ignore[arg-type]
    tls.close()  # type: ignore[attr-defined]


def test_serve__aborted_downloads_are_released_at_once(tmp_path: Path) -> None:
    """100 downloads aborted mid-body: every thread and descriptor is back within 3 s (the
    peer's reset shows at the first write or while waiting for its acknowledgements)."""
    import threading

    from esp_ota_doit.serve import serving
    from esp_ota_doit.serve.server import Server

    from tests.test_serve import context, make_image, make_site

    site = make_site(tmp_path / "p", image=make_image(size=1024 * 1024))  # fits in the buffers
    where = cert_files(site.plan.certs_dir)
    server = Server(
        resources=serving.check(site.plan, emit=lambda _: None).resources,
        cert=where.server_cert,
        key=where.server_key,
        bind="127.0.0.1",
        port=0,
    )
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        threads, descriptors = threading.active_count(), len(os.listdir("/proc/self/fd"))
        clients = [
            _stalled(server.port, context(site), f"127.0.0.{2 + index % 8}") for index in range(100)
        ]
        assert threading.active_count() >= threads + 100  # one worker each, mid-body
        for index, tls in enumerate(clients):
            _abort(tls, reset=bool(index % 2))
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and threading.active_count() > threads:
            time.sleep(0.05)
        assert threading.active_count() == threads
        assert len(os.listdir("/proc/self/fd")) <= descriptors
    finally:
        stop.set()
        thread.join(timeout=5)


# --- empty option values: one line, never doit's IndexError ----------------------------------


def test_argv_guard__empty_values_become_empty_options() -> None:
    from esp_ota_doit.argv_guard import rewritten

    assert rewritten(["boot", "--slot", ""]) == ["boot", "--slot="]
    assert rewritten(["flash", "-p", "", "--baud", ""]) == ["flash", "--port=", "--baud="]
    assert rewritten(["flash", "--port=", ""]) == ["flash", "--port=", "''"]
    assert rewritten(["", "list"]) == ["''", "list"]
    assert rewritten(["flash", "--port", "/dev/ttyUSB0"]) == ["flash", "--port", "/dev/ttyUSB0"]


def test_empty_option_values__one_line_no_traceback(project_dir: Path) -> None:
    """As a user types them, through the installed package (its .pth guards doit's argv)."""
    cases = {
        (
            "boot",
            "--slot",
            "",
        ): "ERROR: --slot: '' is empty; name an app slot (factory, ota_0, ...)\n",
        (
            "flash",
            "--port",
            "",
        ): "ERROR: --port: '' is empty; name a serial port like /dev/ttyUSB0\n",
        ("flash", "-p", ""): "ERROR: --port: '' is empty; name a serial port like /dev/ttyUSB0\n",
        (
            "status",
            "--port",
            "",
        ): "ERROR: --port: '' is empty; name a serial port like /dev/ttyUSB0\n",
    }
    for args, line in cases.items():
        result = doit_process(project_dir, *args)
        assert (result.returncode, result.stderr) == (3, line), args
        assert not (project_dir / "build").exists()
