"""Every `emosync` command documents itself: `--help` text with a runnable example."""

from __future__ import annotations

import typer.main

import emosync


def _leaf_commands(command, path=()):
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        yield " ".join(path), command
        return
    for name, sub in subcommands.items():
        yield from _leaf_commands(sub, (*path, name))


def test_every_command_has_help_with_an_example():
    commands = dict(_leaf_commands(typer.main.get_command(emosync.app)))
    assert {"record", "demo", "card", "synth train", "synth sample", "synth audit", "pretrain"} <= set(commands)
    missing = [name for name, command in commands.items() if f"Example: emosync {name.split()[0]}" not in
               (command.help or "")]
    assert not missing, f"commands whose --help lacks 'Example: emosync ...': {missing}"
