"""What every importer does the same way: a new session file that appears whole or not at all.

An importer writes its session under a hidden temporary name beside the output and links it
into place only once it is complete, so a failure half-way (a damaged frame, a truncated
file, Ctrl-C) leaves nothing behind, and a file that appeared at the output meanwhile is never
replaced. The parameters every importer shares are documented once, here (``%(if_exists)s``,
``%(subject_notes)s`` with :func:`acquisition.utils.docs.fill_doc`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from acquisition.session.writer import check_output_path
from acquisition.utils.docs import add_doc
from acquisition.utils.hashing import file_sha256

add_doc("if_exists", """
if_exists : ``"error"`` | ``"rename"``
    When the output exists: refuse (default), or move the old file to ``<stem>_oldN.h5`` first
    (see :func:`acquisition.session.writer.check_output_path`). An existing file is never overwritten.
""")
add_doc("subject_notes", """
subject_id, notes : str
    Root metadata of the new session: a pseudonymous subject id (never a name) and free text.
""")


@contextlib.contextmanager
def new_session_file(out: str | os.PathLike, *, if_exists: str = "error") -> Iterator[Path]:
    """Yield a temporary path to write a session to; publish it at ``out`` when the block succeeds.

    Parameters
    ----------
    out : path-like
        The session file to create. Checked before the block runs (see ``if_exists``).
    if_exists : ``"error"`` | ``"rename"``
        See :func:`acquisition.session.writer.check_output_path`.

    Yields
    ------
    tmp : Path
        A hidden file name in ``out``'s folder (``.<name>.<random>.partial``) that does not exist yet.

    Raises
    ------
    FileExistsError
        If ``out`` exists (``if_exists="error"``), or appeared while the block ran.
    """
    out = check_output_path(out, if_exists=if_exists)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        yield tmp
        publish_file(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def publish_file(tmp: Path, out: Path, *, overwrite: bool = False, action: str = "importing",
                 hint: str = "Choose another output name.") -> None:
    """Move a finished file ``tmp`` to ``out``, never replacing a file that appeared meanwhile.

    Parameters
    ----------
    tmp : Path
        The finished file, in ``out``'s folder.
    out : Path
        Where it goes.
    overwrite : bool
        Replace ``out`` if it exists (exports that the user asked to overwrite); sessions never are.
    action, hint : str
        What was being done (``"importing"``, ``"exporting"``) and what to do instead, for the error message.

    Raises
    ------
    FileExistsError
        If ``out`` appeared while the file was written and ``overwrite`` is False.
    """
    if overwrite:
        os.replace(tmp, out)
        return
    appeared = f"{out} appeared while {action}; emosync never overwrites it. {hint}"
    try:
        os.link(tmp, out)  # fails if out appeared meanwhile, unlike rename
    except FileExistsError:
        raise FileExistsError(appeared) from None
    except OSError:  # a file system without hard links
        if out.exists():
            raise FileExistsError(appeared) from None
        os.rename(tmp, out)


def source_metadata(source: Path, source_format: str, *, checksum: bool = True) -> dict[str, Any]:
    """Root attributes that say where an imported session came from.

    Parameters
    ----------
    source : Path
        The imported file (or folder).
    source_format : str
        ``"xdf"``, ``"video"``, ``"depth-images"``, ``"brainflow-csv"``...
    checksum : bool
        Add the SHA-256 of the file (one extra read of it); folders never get one.

    Returns
    -------
    metadata : dict
        ``source_format``, ``source_file`` (the name only: paths can hold names of people),
        ``imported_time`` (ISO 8601, UTC) and, for a file, ``source_sha256``.
    """
    metadata: dict[str, Any] = {"source_format": source_format, "source_file": source.name,
                                "imported_time": _dt.datetime.now(_dt.timezone.utc).isoformat()}
    if checksum and source.is_file():
        metadata["source_sha256"] = file_sha256(source)
    return metadata
