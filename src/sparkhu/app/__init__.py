"""The application layer: the running platform and every command, built from Settings in one place.

* :mod:`~sparkhu.app.runtime` — :class:`Runtime`, the backends of a home, each opened on first use;
* :mod:`~sparkhu.app.assembly` — :func:`build_platform`, the one wiring of ``up``, ``demo`` and ``serve``;
* :mod:`~sparkhu.app.platform` — :class:`Platform`, which runs the services in threads;
* :mod:`~sparkhu.app.demo` — the demo's generated data, history and champions;
* :mod:`~sparkhu.app.ingest`, :mod:`~sparkhu.app.pipelines`, :mod:`~sparkhu.app.training` — what
  the other commands call.

The CLI and the gateway sit above this layer: they parse, call it and print.
"""

from sparkhu.app.assembly import build_platform
from sparkhu.app.platform import Platform
from sparkhu.app.runtime import Runtime

__all__ = ["Platform", "Runtime", "build_platform"]
