"""Reliability under hostile or unlucky conditions: an oversized project.yaml, empty option
values, a run that waited for the project lock while project.yaml was edited.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

from esp_ota_doit import wiring

from tests.doitrun import doit_process, edit


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
    """A run that waited for the project lock reads project.yaml once it has the lock."""
    holder = os.open(project_dir, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        waiting = subprocess.Popen(
            [sys.executable, "-m", "doit", "info", "render:sdkconfig-hello_world"],
            cwd=project_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(2)  # it starts, reads nothing yet, and waits for the lock
        assert waiting.poll() is None
        edit(project_dir, "version: 1.0.1}", "version: 9.9.9}")
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode in (0, 1), err  # doit info: 1 when the task is not up to date
    assert "Traceback" not in err
    assert "waiting for another doit run" in err
    assert "9.9.9" in out and "1.0.1" not in out


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
    from esp_ota_doit.device.link import Link
    from esp_ota_doit.errors import DeviceError
    from esp_ota_doit.paths import Paths
    from esp_ota_doit.rehearsal import board as virtual_board

    plan = flash.plan(wiring.load_project(), Paths(built))
    with virtual_board.VirtualBoard(
        built / "build/virtual/esp32-flash.bin", target="esp32", flash_size=4 * 1024 * 1024
    ) as board:
        board_port = int(board.port.rsplit(":", 1)[1])
        dying = _DyingLink(board_port)
        link = Link(
            port=f"socket://127.0.0.1:{dying.port}", resettable=False, fixed_baud=True, virtual=True
        )
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
