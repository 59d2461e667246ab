"""``callagent``: the command line and the composition root that wires engine, control plane and bench.

The public surface, for embedders and the bench (which import nothing else of this package):
:func:`build_server` (the server ``callagent serve`` runs) and the process helpers
:func:`run` (uvloop), :func:`configure_logging` and :func:`freeze_startup_heap`.
"""

from .runtime import configure_logging, freeze_startup_heap, run
from .server import Server, build_server

__all__ = ["Server", "build_server", "configure_logging", "freeze_startup_heap", "run"]
