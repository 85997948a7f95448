"""The ``wrapserve`` command line: one module per command group, ``main`` wires them."""

from server.cli.main import app

__all__ = ["app"]
