"""The gateway as a service of the platform: GraphQL, REST, metrics and the dashboard under uvicorn.

``sparkhu up``, ``demo`` and ``serve`` hand :func:`add_gateway` to
:func:`sparkhu.app.assembly.build_platform`; the gateway sits above the application layer, so
the assembly does not import it.
"""

from __future__ import annotations

import socket
import threading

from sparkhu.app.platform import Platform
from sparkhu.app.runtime import Runtime
from sparkhu.gateway.app import create_app
from sparkhu.gateway.services import GatewayServices


def add_gateway(
    platform: Platform, runtime: Runtime, *, host: str | None = None, port: int | None = None
) -> str:
    """Serve GraphQL, REST, metrics and the dashboard; returns (and sets ``platform.url`` to) the URL."""
    import uvicorn

    settings = runtime.settings
    host = host or settings.gateway.host
    port = settings.gateway.port if port is None else port
    if port == 0:
        port = _free_port(host)
    services = GatewayServices.of(runtime)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(services),
            host=host,
            port=port,
            log_level="warning",
            lifespan="on",
            ws="websockets-sansio",
        )
    )

    def run(stop: threading.Event) -> None:
        def exit_on_stop() -> None:
            stop.wait()
            server.should_exit = True

        threading.Thread(target=exit_on_stop, daemon=True).start()
        server.run()

    platform.add("gateway", run, ready=lambda: server.started)
    platform.url = f"http://{host}:{port}/"
    return platform.url


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
