"""Benchmark `doit serve`'s Python server against `openssl s_server -WWW` on loopback TLS.

    python bench/serve.py --clients 50

Both servers get the same fresh CA/cert (certs) and the same ~1.5 MiB file; the client is
the same for both (`curl --parallel`). Prints wall time, aggregate throughput, the ratio, and our
server's peak RSS (VmHWM of its own process) after 1 and after 200 clients.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from esp_ota_doit.paths import CertFiles, cert_files  # noqa: E402
from esp_ota_doit.tls import certs  # noqa: E402

FILE = "firmware.bin"
OURS = """
import sys
from pathlib import Path
from esp_ota_doit.serve.protocol import Limits, resource
from esp_ota_doit.serve.server import Server
www, cert, key, port = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
body = (www / "firmware.bin").read_bytes()
# Every client is 127.0.0.1: the per-address cap would refuse all but 32 of them.
server = Server(resources={"/firmware.bin": resource(body, "application/octet-stream")},
                cert=Path(cert), key=Path(key), bind="127.0.0.1", port=port,
                limits=Limits(per_client=1024))
print("ready", flush=True)
server.serve()
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


def start_ours(work: Path, where: CertFiles, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", OURS, str(work / "www"), str(where.server_cert)]
    command += [str(where.server_key), str(port)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE)
    assert process.stdout is not None
    process.stdout.readline()
    wait_listening(port)
    return process


def start_s_server(work: Path, where: CertFiles, port: int) -> subprocess.Popen[bytes]:
    command = ["openssl", "s_server", "-WWW", "-quiet", "-accept", str(port)]
    command += ["-cert", str(where.server_cert), "-key", str(where.server_key)]
    # -WWW serves any file under its cwd: a folder holding only the benchmark file.
    process = subprocess.Popen(command, cwd=work / "www", stdout=subprocess.DEVNULL)
    wait_listening(port)
    return process


def download(ca: Path, port: int, clients: int, size: int) -> float:
    """Wall seconds for `clients` parallel downloads; every one must arrive whole."""
    url = f"https://127.0.0.1:{port}/{FILE}"
    command = ["curl", "-s", "--cacert", str(ca), "--parallel", "--parallel-max", str(clients)]
    command += ["-w", "%{size_download}\n"]
    for _ in range(clients):
        command += ["-o", "/dev/null", url]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - started
    sizes = result.stdout.split()
    if len(sizes) != clients or any(int(s) != size for s in sizes):
        raise SystemExit(
            f"incomplete downloads from port {port}: {sizes[:5]}… rc={result.returncode}"
        )
    return wall


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return -1


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()


def measure(
    work: Path, where: CertFiles, clients: int, size: int, rounds: int
) -> tuple[float, float]:
    """Median wall seconds (ours, s_server); rounds alternate so machine load hits both alike."""
    ports = free_port(), free_port()
    servers = start_ours(work, where, ports[0]), start_s_server(work, where, ports[1])
    walls: tuple[list[float], list[float]] = ([], [])
    try:
        for port in ports:
            download(where.ca_cert, port, min(clients, 4), size)  # warm-up
        for _ in range(rounds):
            for port, wall in zip(ports, walls, strict=True):
                wall.append(download(where.ca_cert, port, clients, size))
        return statistics.median(walls[0]), statistics.median(walls[1])
    finally:
        for server in servers:
            stop(server)


def rss_after(work: Path, where: CertFiles, clients: int, size: int) -> tuple[int, int]:
    """(VmHWM at start, VmHWM after `clients` parallel downloads) of a fresh server process."""
    port = free_port()
    process = start_ours(work, where, port)
    try:
        before = peak_rss_kib(process.pid)
        download(where.ca_cert, port, clients, size)
        return before, peak_rss_kib(process.pid)
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50, help="parallel downloads (default 50)")
    parser.add_argument("--size", type=int, default=1_572_864, help="file size in bytes")
    parser.add_argument("--rounds", type=int, default=7, help="runs per server; the median counts")
    args = parser.parse_args()
    if shutil.which("curl") is None or shutil.which("openssl") is None:
        raise SystemExit("needs curl and openssl on PATH")
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as temp:
        work = Path(temp)
        plan = certs.plan(
            project="bench",
            host="127.0.0.1",
            key="ec-p256",
            days=30,
            certs_dir=work / "certs",
            env={},
        )
        certs.issue(plan)
        where = cert_files(plan.certs_dir)
        (work / "www").mkdir()
        (work / "www" / FILE).write_bytes(os.urandom(args.size))
        ours, theirs = measure(work, where, args.clients, args.size, args.rounds)
        total_mib = args.clients * args.size / 2**20
        print(f"{args.clients} parallel downloads of {args.size} bytes (median of {args.rounds})")
        for name, wall in (("ours (python)", ours), ("openssl s_server -WWW", theirs)):
            print(f"  {name:<22} {wall:7.3f} s  {total_mib / wall:8.1f} MiB/s")
        print(f"  ratio ours/s_server throughput: {theirs / ours:.2f}")
        for clients in (1, 200):
            start_kib, peak_kib = rss_after(work, where, clients, args.size)
            print(
                f"  our peak RSS, {clients:>3} clients: {peak_kib / 1024:6.1f} MiB "
                f"(at start {start_kib / 1024:.1f} MiB)"
            )


if __name__ == "__main__":
    main()
