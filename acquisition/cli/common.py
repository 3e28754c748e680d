"""What every command shares: the consoles, the error exit, Ctrl-C handling, list-valued options."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

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


def expand_repeated_options(args: list[str], names: set[str]) -> list[str]:
    """Give every value after a repeatable option its own copy of the option name.

    ``--reference a.h5 b.h5 --json`` becomes ``--reference a.h5 --reference b.h5 --json``: a shell
    expands ``--reference heldout/*.h5`` to the first form, and click reads one value per option
    (it has no option taking a variable number of values). An option's values run up to the next
    token that starts with ``-``; everything after ``--`` is left alone.
    """
    out: list[str] = []
    option, has_value = None, False
    for i, token in enumerate(args):
        if token == "--":
            return out + args[i:]
        if option is not None and not has_value:
            out.append(token)
            has_value = True
            continue
        if option is not None and not token.startswith("-"):
            out += [option, token]
            continue
        name, _, inline_value = token.partition("=")
        option = name if name in names else None
        has_value = bool(inline_value)
        out.append(token)
    return out


class RepeatableOptionsGroup(TyperGroup):
    """A command group whose repeatable options take one or more values (``--train sessions/*.h5``).

    Use as ``typer.Typer(cls=RepeatableOptionsGroup)``. The arguments of the chosen command are
    rewritten by :func:`expand_repeated_options` before click parses them, so a positional argument
    goes before such an option (``emosync synth score CORPUS --reference heldout/*.h5``).
    """

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and not isinstance(command, click.Group):
            repeatable = {opt for param in command.params
                          if isinstance(param, click.Option) and param.multiple and not param.is_flag
                          for opt in param.opts}
            rest = expand_repeated_options(rest, repeatable)
        return name, command, rest
