"""A site's session files from what the user or the node config names: files, folders or globs.

Kept apart from :mod:`.site` (torch, the session readers) so that ``federate local`` and ``join``
can check the paths before any Flower process starts, without importing torch.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path


def resolve_sessions(spec: str | Sequence[str | os.PathLike], *, site: str) -> list[Path]:
    """Session files from a node-config string or a list: files, folders (their ``*.h5``) or globs.

    A string holds entries separated by ``os.pathsep`` (``:`` on Linux). Raises FileNotFoundError
    naming the site when nothing matches.
    """
    entries = [e for e in spec.split(os.pathsep) if e.strip()] if isinstance(spec, str) else [str(e) for e in spec]
    found: list[Path] = []
    for entry in entries:
        path = Path(entry).expanduser()
        if path.is_dir():
            found += sorted(path.glob("*.h5"))
        elif path.is_file():
            found.append(path)
        else:
            found += sorted(Path(p) for p in glob.glob(str(path)))
    if not found:
        raise FileNotFoundError(f"Site {site!r}: no session file (.h5) in {entries}; pass --sessions with files, "
                                "folders or globs of this site's recordings.")
    return found
