"""Repeatable options take every value a shell glob expands to (``--reference heldout/*.h5``)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import typer
import typer.main
from typer.testing import CliRunner

import emosync
from acquisition.cli.common import RepeatableOptionsGroup, expand_repeated_options

NAMES = {"--train", "-t", "--set"}


@pytest.mark.parametrize(("args", "expected"), [
    (["c", "--train", "a", "b", "--json"], ["c", "--train", "a", "--train", "b", "--json"]),
    (["--train", "a", "--train", "b"], ["--train", "a", "--train", "b"]),
    (["-t", "a", "b", "c"], ["-t", "a", "-t", "b", "-t", "c"]),
    (["--train=a", "b"], ["--train=a", "--train", "b"]),
    # a first value may start with "-" (click reads it as the value); later ones end the list
    (["--set", "-x=1", "y=2", "-v"], ["--set", "-x=1", "--set", "y=2", "-v"]),
    # a non-repeatable option's value is not taken for the repeatable one before it
    (["--train", "a", "--out", "o", "p"], ["--train", "a", "--out", "o", "p"]),
    (["--train", "a", "--", "b"], ["--train", "a", "--", "b"]),
    (["--train"], ["--train"]),
    (["x", "y"], ["x", "y"]),
])
def test_expand_repeated_options_known_answers(args, expected):
    assert expand_repeated_options(args, NAMES) == expected


def _app() -> typer.Typer:
    app = typer.Typer(cls=RepeatableOptionsGroup)

    @app.command()
    def score(corpus: Path, reference: list[Path] = typer.Option([], "--reference", "-r"),
              out: Path = typer.Option(Path("."), "--out"), as_json: bool = typer.Option(False, "--json")) -> None:
        typer.echo(f"{corpus}|{','.join(map(str, reference))}|{out}|{as_json}")

    @app.command()
    def other() -> None:  # two commands, so `score` is a subcommand as in emosync
        pass

    return app


def test_a_glob_after_a_repeatable_option_is_read_whole():
    result = CliRunner().invoke(_app(), ["score", "c1", "--reference", "h1.h5", "h2.h5", "h3.h5", "--out", "o",
                                         "--json"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "c1|h1.h5,h2.h5,h3.h5|o|True"


def test_a_stray_argument_is_still_an_error():
    # a positional after the option's values is taken as a value; before any option, click reports it
    result = CliRunner().invoke(_app(), ["score", "c1", "c2", "--reference", "h1.h5"])
    assert result.exit_code == 2
    assert "unexpected extra argument" in result.output.lower()


def test_every_emosync_group_reads_lists():
    """A new sub-app that forgets ``cls=RepeatableOptionsGroup`` would break ``--train sessions/*.h5``."""
    def groups(command):
        if isinstance(command, click.Group):
            yield command
            for sub in command.commands.values():
                yield from groups(sub)

    found = list(groups(typer.main.get_command(emosync.app)))
    assert len(found) >= 4
    assert all(isinstance(g, RepeatableOptionsGroup) for g in found), [g.name for g in found
                                                                        if not isinstance(g, RepeatableOptionsGroup)]
