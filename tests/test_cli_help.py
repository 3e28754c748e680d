"""Every `emosync` command documents itself (help with a runnable example, nothing lost to markup) and starts fast."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import typer.main
from rich.text import Text
from typer.testing import CliRunner

import emosync

from .conftest import REPO_ROOT, emosync_command

#: What neither `emosync --help` nor the start of `emosync record` uses (seconds of imports between them).
NOT_AT_START = ("scipy", "torch", "mne", "mediapipe", "diffusers", "matplotlib", "sklearn", "pandas")


def _leaf_commands(command, path=()):
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        yield " ".join(path), command
        return
    for name, sub in subcommands.items():
        yield from _leaf_commands(sub, (*path, name))


def _commands() -> dict:
    return dict(_leaf_commands(typer.main.get_command(emosync.app)))


def test_every_command_has_help_with_an_example():
    commands = _commands()
    assert {"record", "demo", "card", "synth train", "synth sample", "synth audit", "pretrain"} <= set(commands)
    missing = [name for name, command in commands.items() if f"Example: emosync {name.split()[0]}" not in
               (command.help or "")]
    assert not missing, f"commands whose --help lacks 'Example: emosync ...': {missing}"


def test_help_text_survives_rich_markup():
    """typer renders help with rich: an unescaped "[brainflow]" is read as a style tag and vanishes."""
    lost = []
    for name, command in _commands().items():
        for text in [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]:
            if Text.from_markup(text).plain != text.replace("\\[", "["):
                lost.append((name, text))
    assert not lost, f"help text that rich would change (escape '[' as '\\\\['): {lost}"


def test_install_hints_are_quoted_and_complete():
    result = CliRunner().invoke(emosync.app, ["stream-device", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert 'pip install "emosync[brainflow]"' in result.output
    for name, command in _commands().items():  # every hint: quoted, so shells do not glob or redirect
        for hint in re.findall(r"pip install [^)\n]*", command.help or ""):
            assert re.match(r'pip install "[^"]+"', hint), (name, hint)


def test_demo_help_names_every_stage():
    from emosync_demo import STAGES

    help_text = _commands()["demo"].help
    assert all(stage in help_text for stage in STAGES)


def _imported_by(code: str) -> list[str]:
    probe = f"import json, sys; {code}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_emosync_help_imports_no_library():
    modules = {name.split(".")[0] for name in _imported_by("import emosync")}
    unused = modules & {*NOT_AT_START, "h5py", "numpy", "pylsl", "cv2", "pydantic", "omegaconf"}
    assert not unused, f"`import emosync` (every --help) imports {sorted(unused)}"


def test_record_starts_without_analysis_libraries(tmp_path, unique_prefix):
    # -X importtime lists every module the real command imported before it gave up waiting for the stream.
    result = subprocess.run([sys.executable, "-X", "importtime", *emosync_command(
        "record", str(tmp_path / "s.h5"), "--stream", f"name='{unique_prefix}none'", "--wait", "0.5")[1:]],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert result.returncode == 1 and "No LSL stream matched" in result.stderr
    modules = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in result.stderr.splitlines()
               if line.startswith("import time:") and "|" in line}
    assert {"pylsl", "h5py", "numpy"} <= modules  # it got as far as recording needs
    # OpenCV and hdf5plugin only for image or filtered video (0.1 s of start-up CPU each that raw recording skips).
    unused = modules & {*NOT_AT_START, "cv2", "hdf5plugin"}
    assert not unused, sorted(unused)
