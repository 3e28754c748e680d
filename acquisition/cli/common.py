"""What every command shares: the consoles, the error exit, Ctrl-C handling."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

# Wide output when piped (logs, CI): rich would otherwise truncate tables to 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=160)
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` as an error on stderr and return the ``typer.Exit`` to raise (exit ``code``).

    ``message`` is printed literally: brackets in it (``pip install "emosync[brainflow]"``, paths) are
    not read as rich markup. It is not broken into lines (``soft_wrap``): paths in it stay whole, to be
    copied, and the terminal wraps the line.
    """
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def install_stop_handlers(stop: threading.Event) -> None:
    """Make SIGTERM and SIGINT (Ctrl-C) set ``stop`` so long commands end cleanly."""
    def handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
