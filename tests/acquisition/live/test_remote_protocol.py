"""LabRecorder's remote-control lines and file-name templates, without a network (remote_protocol.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from acquisition.live.remote_protocol import (BIDS_TEMPLATE, FilenameFields, RemoteCommandError,
                                              apply_filename_options, next_session_path, parse_address,
                                              parse_command, parse_filename_options, render_path, xdf_renamed)


@pytest.mark.parametrize(("line", "name", "selection"), [
    ("start", "start", None), ("stop\r\n", "stop", None), ("  update ", "update", None), ("START", "start", None),
    ("select all", "select", "all"), ("select none", "select", "none"), ("select  ALL", "select", "all"),
    ("", "empty", None), ("\n", "empty", None),
])
def test_simple_commands(line, name, selection):
    command = parse_command(line)
    assert (command.name, command.selection) == (name, selection)


@pytest.mark.parametrize(("line", "match"), [
    ("record", "Unknown command 'record'. Known commands: select all; select none; update; start; stop"),
    ("start now", "'start' takes no arguments"),
    ("select some", "'select' needs 'all' or 'none'"),
    ("select", "'select' needs 'all' or 'none'"),
    ("filename", r"'filename' needs at least one \{field:value\} option"),
])
def test_bad_commands_say_what_to_send(line, match):
    with pytest.raises(RemoteCommandError, match=match):
        parse_command(line)


def test_filename_options_as_labrecorder_reads_them():
    # LabRecorder's README example, with and without spaces between options; a value may hold colons.
    options = parse_filename_options(r"{root:C:\Data\} {template:exp%n\%p_block_%b.xdf} {run:2} "
                                     "{participant:P003}{task:MemoryGuided}")
    assert options == {"root": "C:\\Data\\", "template": "exp%n\\%p_block_%b.xdf", "run": "2",
                       "participant": "P003", "task": "MemoryGuided"}
    assert parse_filename_options("{Task:rest} {task:smile}") == {"task": "smile"}  # case-insensitive, last wins
    assert parse_filename_options("{acquisition:}") == {"acquisition": ""}


@pytest.mark.parametrize(("text", "match"), [
    ("{root:/data", r"Missing '\}' after '\{root:/data'"),
    ("{root:/data {task:rest}", r"Missing '\}' after '\{root:/data '"),
    ("root:/data}", r"Unexpected text 'root:/data\}' outside braces"),
    ("{task:rest} run:2", r"Unexpected text 'run:2' outside braces"),
    ("{task}", r"Option \{task\} has no ':'"),
    ("{subject:P1}", "Unknown field 'subject' in 'filename'. Known fields: root, template, task, run, participant"),
])
def test_malformed_filename_options(text, match):
    with pytest.raises(RemoteCommandError, match=match):
        parse_filename_options(text)


def test_bids_default_layout_matches_labrecorder(tmp_path):
    fields = FilenameFields(root=tmp_path)
    assert fields.template is None and fields.has_run
    # LabRecorder fills empty fields with P001 / S001 / Default / eeg and drops _acq- when unset.
    assert render_path(fields) == tmp_path / "sub-P001/ses-S001/eeg/sub-P001_ses-S001_task-Default_run-001_eeg.h5"
    fields = apply_filename_options(fields, {"participant": "07", "session": "2", "task": "smile", "run": "12",
                                             "acquisition": "fast", "modality": "EMG"})
    assert render_path(fields) == tmp_path / "sub-07/ses-2/emg/sub-07_ses-2_task-smile_acq-fast_run-012_emg.h5"
    assert xdf_renamed(fields) and BIDS_TEMPLATE.endswith(".xdf")


def test_legacy_template_and_placeholders(tmp_path):
    fields = apply_filename_options(FilenameFields(root=tmp_path), parse_filename_options(
        r"{template:exp%n\%p_block_%b.xdf} {run:2} {participant:P003} {task:MemoryGuided}"))
    # LabRecorder's README example: the counter has 3 digits, a backslash is a folder separator.
    assert render_path(fields) == tmp_path / "exp002" / "P003_block_MemoryGuided.h5"
    fields = apply_filename_options(fields, {"template": "%p/%s/%a_%m_%r.h5", "session": "S2", "acquisition": "hd",
                                             "modality": "video"})
    assert render_path(fields) == tmp_path / "P003/S2/hd_video_002.h5"
    assert not xdf_renamed(fields)
    # A value that contains a placeholder is not replaced again (one pass, unlike LabRecorder's chain).
    fields = apply_filename_options(fields, {"template": "%b_%p", "task": "%p"})
    assert render_path(fields) == tmp_path / "%p_P003.h5"  # no suffix: .h5 is appended
    fields = apply_filename_options(fields, {"template": "Case/Kept.HDF5"})
    assert render_path(fields) == tmp_path / "Case/Kept.HDF5"  # LabRecorder would lowercase the template


def test_filename_options_are_all_or_nothing(tmp_path):
    fields = FilenameFields(root=tmp_path, task="rest")
    with pytest.raises(RemoteCommandError, match=r"\{run:two\} is not a run number"):
        apply_filename_options(fields, {"task": "smile", "run": "two"})
    assert fields.task == "rest"
    for options, match in [({"run": "-1"}, "not a run number"),
                           ({"participant": "../../etc"}, "is a path, not a label"),
                           ({"task": "a/b"}, "is a path, not a label"),
                           ({"root": "  "}, r"\{root:\} is empty"),
                           ({"template": "%p_%x.xdf"}, r"Unknown placeholder '%x'.*Known placeholders: %p"),
                           ({"template": "trailing%"}, "Unknown placeholder '%'")]:
        with pytest.raises(RemoteCommandError, match=match):
            apply_filename_options(fields, options)


@pytest.mark.parametrize("template", ["../outside.xdf", "a/../../outside.xdf", r"..\outside.xdf", "/etc/x.xdf",
                                      "C:/Data/x.xdf"])
def test_template_cannot_leave_the_root(tmp_path, template):
    with pytest.raises(RemoteCommandError, match="root folder"):
        apply_filename_options(FilenameFields(root=tmp_path), {"template": template})


def test_windows_root_on_posix_is_refused(tmp_path):
    with pytest.raises(RemoteCommandError, match=r"looks like a Windows path.*\{root:/data/study\}"):
        apply_filename_options(FilenameFields(root=tmp_path), {"root": "C:\\Data\\"})


def test_template_errors_at_render_time(tmp_path):
    with pytest.raises(RemoteCommandError, match="uses %p but participant is empty"):
        render_path(FilenameFields(root=tmp_path, template="%p_%b.xdf", task="rest"))
    with pytest.raises(RemoteCommandError, match="names a folder, not a file"):
        render_path(FilenameFields(root=tmp_path, template="%b/", task="rest"))


def test_next_session_path_moves_to_a_free_run_and_never_names_an_existing_file(tmp_path):
    fields = FilenameFields(root=tmp_path, template="%p/run%n.xdf", participant="P1", run=1)
    _, first = next_session_path(fields)
    first.parent.mkdir(parents=True)
    first.write_bytes(b"taken")
    (tmp_path / "P1/run002.h5").write_bytes(b"taken")
    moved, path = next_session_path(fields)
    assert (moved.run, path) == (3, tmp_path / "P1/run003.h5")
    # Without a run placeholder the name stays (the recorder then renames the old file _oldN, as LabRecorder).
    plain = FilenameFields(root=tmp_path, template="P1/run001.h5")
    assert next_session_path(plain) == (plain, first)
    with pytest.raises(RemoteCommandError, match="Every run from 001 to 2 of"):
        next_session_path(fields, max_run=2)


@pytest.mark.parametrize(("text", "expected"), [
    ("22345", ("127.0.0.1", 22345)), ("0.0.0.0:22346", ("0.0.0.0", 22346)), ("localhost:0", ("localhost", 0)),
    ("[::1]:22345", ("::1", 22345)),
])
def test_parse_address(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", "host:", ":22345x", "99999", "abc"])
def test_parse_address_errors(text):
    with pytest.raises(ValueError, match=r"Give \[HOST:\]PORT, e.g. '22345'"):
        parse_address(text)


def test_root_expands_user(tmp_path):
    fields = apply_filename_options(FilenameFields(root=tmp_path), {"root": "~/study"})
    assert fields.root == Path("~/study").expanduser()
