"""What every command line of the project shares: the one way a user error ends a command.

A user's mistake (a bad path, option or file) ends in one line ``error: ...`` on stderr that
names the file and the reason, and exit code 2; never a traceback.
"""

from __future__ import annotations

from typing import NoReturn

import typer

# the exception types a library call raises for a user's input (ConfigError is a ValueError)
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    PermissionError,
    OSError,
)


def fail(message: str) -> NoReturn:
    """Print ``error: message`` to stderr and exit with code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
