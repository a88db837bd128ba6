"""`doit serve`'s engines: the built-in TLS server (server.py), or nginx in the foreground
(publish.py), both serving exactly what serving.check allows."""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..paths import cert_files
from .serving import ServeError, ServePlan, banner, check

__all__ = ["run"]


def run(
    plan: ServePlan,
    *,
    ready: threading.Event | None = None,
    stop: threading.Event | None = None,
    on_bound: Callable[[int], None] | None = None,
) -> None:
    """Serve until Ctrl-C (returns normally) or until `stop` is set.

    Raises:
        ServeError: a refusal from `check`, an unloadable cert/key, or an unbindable port.
    """
    if plan.engine == "nginx":
        from .publish import run_nginx

        run_nginx(plan, ready=ready, stop=stop)
        return
    from .budget import raise_descriptor_limit
    from .protocol import Limits
    from .server import Console, Server, TLSSetupError, bind_failure

    content = check(plan)
    console = Console(plan.log_format)
    where = cert_files(plan.certs_dir)
    raise_descriptor_limit(plan.max_connections)
    try:
        server = Server(
            resources=content.resources,
            cert=where.server_cert,
            key=where.server_key,
            bind=plan.bind,
            port=plan.port,
            listener=console.listener,
            limits=Limits(connections=plan.max_connections, per_client=plan.max_per_client),
        )
    except TLSSetupError as err:  # loaded before the bind, so never blamed on ota.bind
        raise ServeError(
            f"cannot load the server certificate/key from {plan.certs_dir}/ ({err}); "
            "run `doit certs`"
        ) from None
    except OSError as err:
        raise ServeError(bind_failure(plan.bind, plan.port, err)) from None
    for text in banner(plan, content, server.port, extra=[server.limits_text]):
        console.line(text)
    if on_bound is not None:
        on_bound(server.port)
    if ready is not None:
        ready.set()
    try:
        with console:
            server.serve(stop)
    except KeyboardInterrupt:
        console.line("stopped (Ctrl-C)")
    finally:
        server.close()
