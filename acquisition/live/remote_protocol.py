"""LabRecorder's remote-control protocol, without the network: commands, file-name fields, templates.

LabRecorder (App-LabRecorder, ``src/tcpinterface.cpp`` and ``MainWindow::rcsUpdateFilename``) listens on
TCP port 22345 for text lines: ``select all``, ``select none``, ``update``, ``start``, ``stop`` and
``filename {root:...} {template:...} {task:...} ...``. Experiment software (PsychoPy, Presentation,
MATLAB) drives it that way, so ``emosync record --remote`` speaks the same lines. This module holds the
pure part, unit-tested on its own: parsing one line into a :class:`RemoteCommand`, the file-name fields
(:class:`FilenameFields`) with LabRecorder's placeholders (``%p`` participant, ``%s`` session, ``%b``
task/block, ``%n`` and ``%r`` run, ``%a`` acquisition, ``%m`` modality) and its BIDS default layout, and
the path of the next recording (:func:`next_session_path`), which always stays inside the root folder
and never names an existing file. The TCP server and the recorder it drives are in
:mod:`acquisition.live.remote_control`.

Where we differ from LabRecorder (on purpose, see docs/remote-control.md): a bad line gets an
``ERROR: ...`` reply instead of a silent ``OK``; templates keep their case (LabRecorder lowercases
them); ``%n`` and ``%r`` are both the run number; a template may not leave the root folder; the file
is an HDF5 session (``.h5``) even when the template ends in ``.xdf``.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from acquisition.utils.logs import logger

#: LabRecorder's default remote-control port (``RCSPort`` in LabRecorder.cfg).
DEFAULT_PORT = 22345
#: Loopback by default: anyone who can reach the port can start and stop recordings.
DEFAULT_HOST = "127.0.0.1"

#: LabRecorder's BIDS layout; ``[_acq-%a]`` is dropped when no acquisition label is set.
BIDS_TEMPLATE = "sub-%p/ses-%s/%m/sub-%p_ses-%s_task-%b[_acq-%a]_run-%r_%m.xdf"
#: The values LabRecorder's BIDS mode fills into empty fields (``MainWindow::buildBidsTemplate``).
BIDS_DEFAULTS = {"participant": "P001", "session": "S001", "task": "Default", "modality": "eeg"}

#: The fields of the ``filename`` command, in LabRecorder's order.
FILENAME_FIELDS = ("root", "template", "task", "run", "participant", "session", "acquisition", "modality")
#: Placeholder letter -> field it is replaced with (``%n`` and ``%r`` are both the run, 3 digits).
PLACEHOLDERS = {"p": "participant", "s": "session", "b": "task", "a": "acquisition", "m": "modality",
                "n": "run", "r": "run"}
#: Suffixes kept as they are; ``.xdf`` becomes ``.h5``, anything else gets ``.h5`` appended.
SESSION_SUFFIXES = (".h5", ".hdf5")

_COMMANDS = ("select all", "select none", "update", "start", "stop", "filename {field:value} ...")
_EXAMPLE = "filename {root:/data/study} {participant:P003} {task:MemoryGuided} {run:2}"


class RemoteCommandError(ValueError):
    """A remote-control line that cannot be carried out; the message is sent back to the client."""


@dataclass(frozen=True)
class RemoteCommand:
    """One parsed line of the protocol.

    Attributes
    ----------
    name : str
        ``"start"``, ``"stop"``, ``"update"``, ``"select"``, ``"filename"``, or ``"empty"`` for a blank
        line (LabRecorder answers it with ``OK`` and does nothing; so do we).
    selection : str | None
        ``"all"`` or ``"none"`` for ``select``.
    options : dict of str to str
        The ``{field:value}`` options of ``filename``, field names lowercased.
    """

    name: str
    selection: str | None = None
    options: dict[str, str] | None = None


@dataclass(frozen=True)
class FilenameFields:
    """What LabRecorder's "Location builder" holds: the study root, the template and its fields.

    Attributes
    ----------
    root : Path
        The study root folder; every recording goes inside it.
    template : str | None
        The path template relative to ``root`` (``/`` or ``\\`` separate folders); None is LabRecorder's
        BIDS layout (:data:`BIDS_TEMPLATE`).
    task, participant, session, acquisition, modality : str
        The values of ``%b``, ``%p``, ``%s``, ``%a`` and ``%m``.
    run : int
        The value of ``%n`` and ``%r``, written with at least 3 digits (``2`` -> ``002``).
    """

    root: Path
    template: str | None = None
    task: str = ""
    run: int = 1
    participant: str = ""
    session: str = ""
    acquisition: str = ""
    modality: str = "eeg"

    @property
    def effective_template(self) -> str:
        """The template in use: the user's, or the BIDS layout (with ``_acq-%a`` only when set)."""
        if self.template is not None:
            return self.template
        return BIDS_TEMPLATE.replace("[_acq-%a]", "_acq-%a" if self.acquisition else "")

    @property
    def has_run(self) -> bool:
        """True when the template numbers runs (``%n`` or ``%r``), so a taken name can move to the next run."""
        return "%n" in self.effective_template or "%r" in self.effective_template

    def labels(self) -> dict[str, str]:
        """The label fields as strings, with LabRecorder's BIDS defaults filled in for the BIDS layout."""
        values = {"task": self.task, "participant": self.participant, "session": self.session,
                  "acquisition": self.acquisition, "modality": self.modality, "run": f"{self.run:03d}"}
        if self.template is None:
            for name, default in BIDS_DEFAULTS.items():
                values[name] = values[name] or default
        return values


def parse_address(text: str) -> tuple[str, int]:
    """Parse ``--remote [HOST:]PORT`` into ``(host, port)``; the host defaults to loopback.

    Parameters
    ----------
    text : str
        ``"22345"``, ``"127.0.0.1:22345"``, ``"0.0.0.0:22345"`` (every interface) or ``"[::1]:22345"``.
        Port 0 lets the system choose a free port.

    Returns
    -------
    host : str
        The address to listen on.
    port : int
        The TCP port, 0-65535.
    """
    text = text.strip()
    host, port_text = DEFAULT_HOST, text
    if text.startswith("["):  # an IPv6 address: [::1]:22345
        host, _, port_text = text[1:].partition("]:")
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not host or not 0 <= port <= 65535:
        raise ValueError(f"Cannot read the remote-control address {text!r}. Give [HOST:]PORT, e.g. "
                         f"'{DEFAULT_PORT}' (loopback), '{DEFAULT_HOST}:{DEFAULT_PORT}', or "
                         f"'0.0.0.0:{DEFAULT_PORT}' to accept connections from other machines.")
    return host, port


def parse_command(line: str) -> RemoteCommand:
    """Parse one protocol line (without its newline).

    Parameters
    ----------
    line : str
        The line as received; surrounding white space is ignored, the command word is case-insensitive.

    Returns
    -------
    command : RemoteCommand
        The parsed command.

    Raises
    ------
    RemoteCommandError
        For an unknown command, ``select`` without ``all``/``none``, extra words after ``start``,
        ``stop`` or ``update``, or a malformed ``filename`` (see :func:`parse_filename_options`).
    """
    text = line.strip()
    if not text:
        return RemoteCommand("empty")
    word, _, rest = text.partition(" ")
    word, rest = word.lower(), rest.strip()
    if word in ("start", "stop", "update"):
        if rest:
            raise RemoteCommandError(f"'{word}' takes no arguments, got {text!r}. Send '{word}' alone.")
        return RemoteCommand(word)
    if word == "select":
        if rest.lower() in ("all", "none"):
            return RemoteCommand("select", selection=rest.lower())
        raise RemoteCommandError(f"'select' needs 'all' or 'none', got {text!r}. Send 'select all' or "
                                 "'select none' (selecting single streams is not part of LabRecorder's protocol; "
                                 "pass --stream queries to emosync record instead).")
    if word == "filename":
        return RemoteCommand("filename", options=parse_filename_options(rest))
    raise RemoteCommandError(f"Unknown command {text[:80]!r}. Known commands: {'; '.join(_COMMANDS)}")


def parse_filename_options(text: str) -> dict[str, str]:
    """Parse the ``{field:value} {field:value}`` options of a ``filename`` command.

    Parameters
    ----------
    text : str
        What follows ``filename``. Options may be separated by white space or nothing (LabRecorder
        accepts both); a value runs to the next ``}`` and may hold colons (``{root:C:\\Data}``).

    Returns
    -------
    options : dict of str to str
        Field name (lowercased, one of :data:`FILENAME_FIELDS`) -> value, in the order given (a field
        given twice keeps its last value, as in LabRecorder).

    Raises
    ------
    RemoteCommandError
        If there is no option, text outside braces, a brace that is not closed, an option without
        ``:``, or an unknown field name. LabRecorder silently ignores all of these.
    """
    if not text.strip():
        raise RemoteCommandError(f"'filename' needs at least one {{field:value}} option, e.g. {_EXAMPLE!r}. "
                                 f"Fields: {', '.join(FILENAME_FIELDS)}.")
    options: dict[str, str] = {}
    position = 0
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        if text[position] != "{":
            stray = text[position:].split("{", 1)[0].strip()
            raise RemoteCommandError(f"Unexpected text {stray!r} outside braces in 'filename {text}'. Each option "
                                     f"must be written {{field:value}}, e.g. {_EXAMPLE!r}.")
        end = text.find("}", position)
        inner = text[position + 1:end] if end >= 0 else text[position + 1:]
        if end < 0 or "{" in inner:
            shown = "{" + inner.split("{", 1)[0]
            raise RemoteCommandError(f"Missing '}}' after {shown!r} in 'filename {text}'. Close every option: "
                                     "{field:value}.")
        name, colon, value = inner.partition(":")
        name = name.strip().lower()
        if not colon:
            raise RemoteCommandError(f"Option {{{inner}}} has no ':'. Write {{field:value}}, e.g. {{task:rest}}.")
        if name not in FILENAME_FIELDS:
            raise RemoteCommandError(f"Unknown field {name!r} in 'filename'. Known fields: "
                                     f"{', '.join(FILENAME_FIELDS)}.")
        options[name] = value
        position = end + 1
    return options


def check_template(template: str) -> None:
    """Raise :class:`RemoteCommandError` if ``template`` uses an unknown placeholder or leaves the root folder.

    Parameters
    ----------
    template : str
        A path template relative to the study root, e.g. ``"exp%n/%p_block_%b.xdf"``.
    """
    for match in re.finditer(r"%(.?)", template):
        if match.group(1) not in PLACEHOLDERS:
            raise RemoteCommandError(
                f"Unknown placeholder {match.group(0)!r} in template {template!r}. Known placeholders: "
                + ", ".join(f"%{letter} ({field})" for letter, field in PLACEHOLDERS.items()) + ".")
    _relative_posix(template, what=f"Template {template!r}")


def _relative_posix(path: str, *, what: str) -> str:
    """``path`` with ``/`` separators, normalized; refused if absolute or if it climbs out with ``..``."""
    # A backslash is LabRecorder's Windows separator (its README examples use it); on this side it is
    # never meant as part of a file name.
    posix = path.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        raise RemoteCommandError(f"{what} is an absolute path; it must be relative to the root folder. Set the "
                                 "folder with {root:...} and the rest with {template:...}.")
    if ".." in PurePosixPath(posix).parts:
        raise RemoteCommandError(f"{what} contains '..' and could leave the root folder; recordings always stay "
                                 "inside {root:...}. Remove the '..' parts.")
    return posixpath.normpath(posix)


def apply_filename_options(fields: FilenameFields, options: dict[str, str]) -> FilenameFields:
    """Return ``fields`` updated by a ``filename`` command; ``fields`` is unchanged when an option is invalid.

    Parameters
    ----------
    fields : FilenameFields
        The current fields.
    options : dict of str to str
        Parsed options (:func:`parse_filename_options`).

    Returns
    -------
    fields : FilenameFields
        The new fields. ``{template:}`` (empty) goes back to the BIDS layout; ``modality`` is lowercased
        (as LabRecorder does); ``run`` must be a whole number >= 0.

    Raises
    ------
    RemoteCommandError
        For a run that is not a number, a label holding a path separator, a Windows root on a POSIX
        system, or a template with an unknown placeholder or that leaves the root folder.
    """
    changes: dict[str, object] = {}
    for name, value in options.items():
        if name == "root":
            value = value.strip()
            if not value:
                raise RemoteCommandError("{root:} is empty. Send the study folder, e.g. {root:/data/study}.")
            if os.sep == "/" and ("\\" in value or re.match(r"^[A-Za-z]:", value)):
                raise RemoteCommandError(f"Root {value!r} looks like a Windows path, but this recorder runs on a "
                                         "POSIX system. Send a path such as {root:/data/study}.")
            changes["root"] = Path(value).expanduser()
        elif name == "template":
            value = value.strip()
            if value:
                check_template(value)
            changes["template"] = value or None
        elif name == "run":
            try:
                run = int(value.strip())
            except ValueError:
                run = -1
            if run < 0:
                raise RemoteCommandError(f"{{run:{value}}} is not a run number. Send a whole number >= 0, "
                                         "e.g. {run:2}.")
            changes["run"] = run
        else:
            value = value.strip()
            if "/" in value or "\\" in value or value in (".", ".."):
                raise RemoteCommandError(f"{{{name}:{value}}} is a path, not a label. Labels name the participant, "
                                         "task...; put folders in {template:...}.")
            changes[name] = value.lower() if name == "modality" else value
    return replace(fields, **changes)  # type: ignore[arg-type]


def render_path(fields: FilenameFields) -> Path:
    """The session file that ``fields`` name: root / template with placeholders replaced.

    Parameters
    ----------
    fields : FilenameFields
        Root, template and labels.

    Returns
    -------
    fname : Path
        A path inside ``fields.root``. A ``.xdf`` suffix becomes ``.h5``; a suffix other than
        ``.h5``/``.hdf5`` gets ``.h5`` appended.

    Raises
    ------
    RemoteCommandError
        If the template uses a field that is empty, or the result is not a file inside the root.
    """
    template = fields.effective_template
    check_template(template)
    labels = fields.labels()

    def substitute(match: re.Match) -> str:
        name = PLACEHOLDERS[match.group(1)]
        if not labels[name]:
            raise RemoteCommandError(f"Template {template!r} uses %{match.group(1)} but {name} is empty. Send "
                                     f"{{{name}:...}} first, or remove %{match.group(1)} from the template.")
        return labels[name]

    # One pass: a value that itself contains "%p" is not replaced again (LabRecorder's replace chain does).
    relative = _relative_posix(re.sub(r"%(.)", substitute, template), what=f"Template {template!r}")
    if relative in (".", "") or template.replace("\\", "/").endswith("/"):
        raise RemoteCommandError(f"Template {template!r} names a folder, not a file. End it with a file name, "
                                 "e.g. {template:%p/%b_run%n.xdf}.")
    fname = Path(fields.root, *PurePosixPath(relative).parts)
    if fname.suffix.lower() == ".xdf":  # the caller logs this once per recording (see xdf_renamed)
        fname = fname.with_suffix(".h5")
    elif fname.suffix.lower() not in SESSION_SUFFIXES:
        fname = fname.with_name(fname.name + ".h5")
    return fname


def xdf_renamed(fields: FilenameFields) -> bool:
    """True when the template ends in ``.xdf`` (LabRecorder's suffix) and the session is written as ``.h5``."""
    return fields.effective_template.lower().endswith(".xdf")


def next_session_path(fields: FilenameFields, *, max_run: int = 1000) -> tuple[FilenameFields, Path]:
    """The fields and file of the next recording, never an existing file's name when the template has a run.

    Parameters
    ----------
    fields : FilenameFields
        The current fields.
    max_run : int
        The highest run tried (LabRecorder tries runs up to 1000).

    Returns
    -------
    fields : FilenameFields
        ``fields`` with ``run`` moved to the first run whose file does not exist yet, if the template
        has ``%n``/``%r`` (as LabRecorder's location builder does).
    fname : Path
        The file to record. Without a run placeholder it may exist: the recorder then renames the old
        file to ``<name>_oldN.h5`` (LabRecorder's rule) before writing.

    Raises
    ------
    RemoteCommandError
        As :func:`render_path`, or when every run up to ``max_run`` is taken.
    """
    fname = render_path(fields)
    if not fields.has_run or not fname.exists():
        return fields, fname
    for run in range(fields.run + 1, max_run + 1):
        candidate = replace(fields, run=run)
        path = render_path(candidate)
        if not path.exists():
            logger.info("%s exists; recording run %03d instead: %s", fname, run, path)
            return candidate, path
    raise RemoteCommandError(f"Every run from {fields.run:03d} to {max_run} of {fname} exists. Send another "
                             "{task:...}, {session:...} or {root:...}.")


__all__ = ["BIDS_DEFAULTS", "BIDS_TEMPLATE", "DEFAULT_HOST", "DEFAULT_PORT", "FILENAME_FIELDS", "FilenameFields",
           "PLACEHOLDERS", "RemoteCommand", "RemoteCommandError", "apply_filename_options", "check_template",
           "next_session_path", "parse_address", "parse_command", "parse_filename_options", "render_path",
           "xdf_renamed"]
