"""``python -m server.cli``: the same as the ``wrapserve`` console script."""

from server.cli.main import main

main()
