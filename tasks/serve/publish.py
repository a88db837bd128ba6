"""`doit publish` and `doit serve --engine nginx`: the served files as a static folder plus an nginx
config (templates/nginx.conf.j2) that serves exactly them, for fleets beyond one laptop.

The private key is referenced by its path in certs/, never copied into build/publish/.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ToolError
from ..files import render_template, write_if_changed
from ..paths import cert_files
from ..release.site import MANIFEST_PATH
from .serving import ServeContent, ServeError, ServePlan, banner

if TYPE_CHECKING:
    from .. import process  # nginx runs in actions alone: imported there (bench/noop.py)

__all__ = ["NGINX_HINT", "Published", "nginx_binary", "run_nginx", "targets", "write"]

NGINX_HINT = "apt-get install nginx-light"
# Temp folders nginx creates at start for each compiled-in module; all moved under build/publish
# so nginx runs as any user. A directive for a module built without is an error, hence the check.
_TEMP_PATHS = (
    ("client_body_temp_path", "http_client_body"),
    ("proxy_temp_path", "http_proxy"),
    ("fastcgi_temp_path", "http_fastcgi"),
    ("uwsgi_temp_path", "http_uwsgi"),
    ("scgi_temp_path", "http_scgi"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Published:
    """Where `write` put things: the web root (allowlisted files only) and the nginx configs."""

    root: Path
    files: tuple[Path, ...]
    site_conf: Path  # the server block, for /etc/nginx/sites-enabled
    nginx_conf: Path  # a whole nginx.conf around it, for `nginx -c` as any user
    prefix: Path  # pid, logs and temp folders of that nginx


def _layout(plan: ServePlan, folder: Path, served: tuple[str, ...] = ()) -> Published:
    """build/publish/ (or serve's own folder): www/ holds exactly the served URL paths."""
    root = folder / "www"
    prefix = folder / "nginx"
    paths = served or (plan.url_path, plan.sha256_path, MANIFEST_PATH)
    return Published(
        root=root,
        files=tuple(root / p.lstrip("/") for p in paths),
        site_conf=prefix / "site.conf",
        nginx_conf=prefix / "nginx.conf",
        prefix=prefix,
    )


def targets(plan: ServePlan) -> list[Path]:
    """What `doit publish` writes (its doit targets)."""
    layout = _layout(plan, plan.publish_dir)
    return [*layout.files, layout.site_conf, layout.nginx_conf]


def write(
    plan: ServePlan, content: ServeContent | None = None, *, folder: Path | None = None
) -> Published:
    """Check the release (as `doit serve` does), then write build/publish/ (or `folder`) with
    exactly the files release/site.py lists, and an nginx config serving them."""
    from .serving import check

    content = content or check(plan)
    layout = _layout(
        plan, folder or plan.publish_dir, tuple(item.url_path for item in content.served)
    )
    for item in content.served:
        write_if_changed(layout.root / item.url_path.lstrip("/"), item.body)
    _prune(layout.root, set(layout.files))
    site, full = _configs(plan, layout, [(item.url_path, item.mime) for item in content.served])
    write_if_changed(layout.site_conf, site)
    write_if_changed(layout.nginx_conf, full)
    print(f"published {plan.url_path} version '{content.image.version}' to {layout.root}")
    for item in content.served[1:]:
        print(f"  also {item.url_path} ({item.mime})")
    print(f"nginx site config: {layout.site_conf} (full config: {layout.nginx_conf})")
    return layout


def _prune(root: Path, keep: set[Path]) -> None:
    """Files from an earlier URL path would be served too; the web root holds the allowlist only."""
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                path.rmdir()
        elif path not in keep:
            path.unlink()


def _configs(plan: ServePlan, layout: Published, types: list[tuple[str, str]]) -> tuple[str, str]:
    where = cert_files(plan.certs_dir)
    listen = f"[{plan.bind}]:{plan.port}" if ":" in plan.bind else f"{plan.bind}:{plan.port}"
    context: dict[str, object] = {
        "listen": listen,
        "server_name": plan.host,
        "cert": where.server_cert.resolve(),
        "key": where.server_key.resolve(),
        "root": layout.root.resolve(),
        "locations": types,
        "log_format": plan.log_format,
    }
    site = render_template("nginx.conf.j2", full=False, **context)
    full = render_template(
        "nginx.conf.j2",
        full=True,
        prefix=layout.prefix.resolve(),
        site=layout.site_conf.resolve(),
        user=_user(),
        temp_paths=[(d, layout.prefix.resolve() / "temp" / n) for d, n in _temp_paths()],
        **context,
    )
    return site, full


_UNPRIVILEGED = ("www-data", "nginx", "nobody")


def _user() -> str | None:
    """As root, nginx's workers must not stay root: they run as www-data (or nginx, nobody).

    The master reads the key and config as root before dropping privileges; the workers only
    read the published files, which `write` makes world-readable (no secret is ever published).
    """
    if os.geteuid() != 0:
        return None
    import grp
    import pwd

    for name in _UNPRIVILEGED:
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            continue
        return f"{name} {grp.getgrgid(account.pw_gid).gr_name}"
    raise ToolError(f"running as root, and none of the accounts {', '.join(_UNPRIVILEGED)} exists")


def _check_workers_reach(root: Path) -> None:
    """As root, refuse to start workers that could not read the site (nginx would answer 403)."""
    user = _user()
    if user is None:
        return
    import pwd

    account = pwd.getpwnam(user.split()[0])
    if not _traversable(root, account.pw_uid, account.pw_gid):
        raise ToolError(
            f"as root, nginx workers run as {account.pw_name}, who cannot enter {root}; serve from "
            "a folder others may enter, or run doit serve as a normal user"
        )


def _traversable(folder: Path, uid: int, gid: int) -> bool:
    """Whether uid:gid may enter every folder from / down to `folder` (by mode bits)."""
    for part in [folder.resolve(), *folder.resolve().parents]:
        info = part.stat()
        shift = 6 if info.st_uid == uid else 3 if info.st_gid == gid else 0
        if not (info.st_mode >> shift) & 0o1:
            return False
    return True


def _temp_paths() -> list[tuple[str, str]]:
    binary = nginx_binary()
    if binary is None:
        return list(_TEMP_PATHS)
    from .. import process

    built = process.capture([binary, "-V"], timeout=30).stderr
    return [(d, n) for d, n in _TEMP_PATHS if f"--without-{n}_module" not in built]


def nginx_binary() -> str | None:
    """nginx on PATH, or Debian's /usr/sbin/nginx (not on a normal user's PATH)."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def _command(binary: str, layout: Published, *extra: str) -> list[str]:
    prefix = f"{layout.prefix.resolve()}/"
    conf = str(layout.nginx_conf.resolve())
    return [binary, "-p", prefix, "-e", "stderr", "-c", conf, "-g", "daemon off;", *extra]


def run_nginx(
    plan: ServePlan, *, ready: threading.Event | None = None, stop: threading.Event | None = None
) -> None:
    """Write build/publish/, then run nginx in the foreground until Ctrl-C or `stop`.

    Raises:
        ToolError: nginx is missing, rejects the config, or exits on its own.
        ServeError: a refusal from the checks, or the port is busy.
    """
    binary = nginx_binary()
    if binary is None:
        raise ToolError(f"nginx not installed ({NGINX_HINT}); or serve with --engine python")
    from .. import process
    from .serving import check

    content = check(plan)
    layout = write(plan, content, folder=plan.serve_nginx_dir)
    (layout.prefix / "temp").mkdir(parents=True, exist_ok=True)
    _check_workers_reach(layout.root)
    _probe_port(plan)
    test = process.capture(_command(binary, layout, "-t"), timeout=60)
    if test.returncode != 0:
        tail = test.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise ToolError(f"nginx -t rejected {layout.nginx_conf}: {tail[0]}", tail=test.stderr)
    # Its own process group, killed with us even by kill -9: no orphaned nginx holds the port.
    nginx = process.start(_command(binary, layout))
    try:
        _wait_listening(plan, nginx)
        for line in banner(plan, content, plan.port):
            print(line, flush=True)
        if ready is not None:
            ready.set()
        while nginx.poll() is None and not (stop is not None and stop.is_set()):
            time.sleep(0.1)
    except KeyboardInterrupt:
        print("stopped (Ctrl-C)", flush=True)
    finally:
        # SIGTERM is nginx's fast shutdown (what Ctrl-C means); then SIGKILL if it lingers.
        process.stop(nginx, first=1)
    if nginx.returncode not in (0, -signal.SIGTERM, -signal.SIGINT, -signal.SIGQUIT) and not (
        stop is not None and stop.is_set()
    ):
        raise ToolError(f"nginx exited with status {nginx.returncode}; its messages are above")


def _probe_port(plan: ServePlan) -> None:
    family = socket.AF_INET6 if ":" in plan.bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((plan.bind, plan.port))
        except OSError as err:
            from .server import bind_failure  # the built-in server's TLS stack, only here

            raise ServeError(bind_failure(plan.bind, plan.port, err)) from None


def _wait_listening(plan: ServePlan, nginx: process.Child) -> None:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(plan.bind, plan.bind)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and nginx.poll() is None:
        try:
            socket.create_connection((host, plan.port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
