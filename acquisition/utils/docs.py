"""Shared parameter documentation: write a parameter's description once, use it in every docstring.

As in MNE-Python (``mne.utils.docs``): a docstring names a shared entry as ``%(name)s`` and the
function is decorated with :func:`fill_doc`, which substitutes the entry from :data:`docdict`
with the placeholder's indentation. Packages above acquisition add their own entries with
:func:`add_doc` at import time, so the text of, say, ``verbose`` or ``overwrite`` exists once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

#: Parameter descriptions in numpydoc form (``name : type`` then the indented description).
docdict: dict[str, str] = {}


def add_doc(name: str, text: str) -> None:
    """Register the shared entry ``name`` (numpydoc text without leading indentation).

    Raises
    ------
    ValueError
        If ``name`` already exists with a different text (two descriptions of one thing).
    """
    text = text.strip("\n")
    if docdict.get(name, text) != text:
        raise ValueError(f"Shared docstring entry {name!r} is already defined with another text.")
    docdict[name] = text


def fill_doc(function: F) -> F:
    """Replace each ``%(name)s`` in ``function``'s docstring by ``docdict[name]``, indented to match.

    Raises
    ------
    KeyError
        If the docstring names an entry that :data:`docdict` does not hold (a typo fails at import).
    """
    doc = function.__doc__
    if not doc:
        return function
    lines = doc.splitlines(keepends=True)
    out = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith("%(") and stripped.rstrip().endswith(")s"):
            name = stripped.strip()[2:-2]
            if name not in docdict:
                raise KeyError(f"{function.__qualname__}: no shared docstring entry {name!r}; "
                               f"known entries: {sorted(docdict)}")
            indent = line[: len(line) - len(stripped)]
            out.append("".join(indent + t if t.strip() else t for t in docdict[name].splitlines(keepends=True)))
            out.append("\n")
        else:
            out.append(line)
    function.__doc__ = "".join(out)
    return function


add_doc("verbose", """
verbose : bool | str | int | None
    Log level for this call (``True`` = INFO, ``False`` = WARNING, or a level name or number); None
    keeps the current level (``EMOSYNC_LOG_LEVEL``, default INFO). See :func:`acquisition.set_log_level`.
""")
add_doc("overwrite", """
overwrite : bool
    Replace an existing output. Default False: an existing output is an error and is left untouched.
""")
add_doc("fname_session", """
fname : path-like
    A session file (``.h5``) written by emosync.
""")
add_doc("session_or_path", """
session : Session | path-like
    An open session, or the path of a session file (opened and closed here).
""")
add_doc("sync_options", """
sync_options : SyncOptions | None
    Synchronization options for all streams (default: :class:`~acquisition.sync.SyncOptions`).
""")
