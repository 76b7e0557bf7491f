"""Vigil: real-time analytics and monitoring in one Python service.

``vigil.Vigil`` is the embedded API; ``vigil.Client`` talks to a running server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Client", "Vigil", "__version__"]

if TYPE_CHECKING:
    from vigil.app import Vigil
    from vigil.client import Client


def __getattr__(name: str) -> Any:
    # Lazy, so `import vigil` stays cheap (the CLI and the SDK need neither DuckDB nor numpy).
    if name == "Vigil":
        from vigil.app import Vigil

        return Vigil
    if name == "Client":
        from vigil.client import Client

        return Client
    raise AttributeError(name)
