"""What a card is made from: session files, ``card.yaml``, and a synthetic corpus's ``corpus.json``/``audit.json``.

A card's input is either a folder (searched recursively for ``*.h5`` sessions) or a list of
session files. A folder holding ``corpus.json`` is a synthetic corpus written by
``emosync synth sample``; its ``audit.json`` (from the privacy audit) is read when present.
Every input is hashed, so ``emosync card --check`` can tell that the data changed after the
card was written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acquisition.utils.hashing import file_sha256
from acquisition.utils.logs import logger
from data_cards.human import CARD_YAML

CORPUS_JSON = "corpus.json"
AUDIT_JSON = "audit.json"


@dataclass
class CardInputs:
    """The files a card describes and the files that shape it.

    Attributes
    ----------
    root : Path
        The folder the paths in the card are relative to (and where ``card.yaml`` is looked for).
    name : str
        The corpus name (the folder's name), used for the default output folder.
    sessions : list of Path
        The session files, sorted.
    card_yaml : Path
        Where the human-written part is (it may not exist).
    corpus : dict | None
        ``corpus.json`` of a synthetic corpus, else None.
    audit : dict | None
        The newest ``audit.json`` (or ``audit-N.json``) of a synthetic corpus, None when it was not audited.
    audit_stale : str | None
        Why that audit does not describe the corpus as it is now (``corpus.json`` changed since, e.g.
        ``synth sample --append`` added sequences), None when it does or there is no audit.
    """

    root: Path
    name: str
    sessions: list[Path]
    card_yaml: Path
    corpus: dict[str, Any] | None = None
    audit: dict[str, Any] | None = None
    audit_stale: str | None = None
    extra_files: list[Path] = field(default_factory=list)  # corpus.json, audit.json: hashed with the inputs

    def relative(self, path: Path) -> str:
        """``path`` relative to :attr:`root`, with forward slashes (as written in the card)."""
        return Path(os.path.relpath(path, self.root)).as_posix()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is not readable JSON ({err}); rewrite it with the command that made it.") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got a {type(data).__name__}.")
    return data


def find_inputs(paths: Sequence[str | os.PathLike], *, card_yaml: str | os.PathLike | None = None) -> CardInputs:
    """Locate the sessions (and corpus files) a card describes.

    Parameters
    ----------
    paths : sequence of path-like
        One folder (recorded sessions, or a synthetic corpus with ``corpus.json``), or session files.
    card_yaml : path-like | None
        The human-written part; default ``card.yaml`` in the folder (or in the files' common folder).

    Returns
    -------
    inputs : CardInputs
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("Give a folder of session files, a synthetic corpus folder, or session files.")
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist. Give a folder of sessions or session files (.h5).")
    corpus = audit = stale = None
    extra: list[Path] = []
    if len(paths) == 1 and paths[0].is_dir():
        root = paths[0].resolve()
        sessions = sorted(p for p in root.rglob("*.h5") if p.is_file())
        if (root / CORPUS_JSON).is_file():
            corpus = _read_json(root / CORPUS_JSON)
            extra.append(root / CORPUS_JSON)
            sessions = _corpus_sessions(root, corpus, sessions)
            audits = audit_files(root)
            if audits:
                audit = _read_json(audits[-1])
                extra += audits
                stale = audit_staleness(audit, corpus, file_sha256(root / CORPUS_JSON), audits[-1].name)
        else:
            _refuse_corpus_sessions(sessions, root)
        if not sessions:
            raise ValueError(
                f"No session files (*.h5) under {root}. Point `emosync card` at a folder of sessions (recorded, "
                "imported or simulated) or at a synthetic corpus folder (the one holding corpus.json)."
            )
    else:
        dirs = [p for p in paths if p.is_dir()]
        if dirs and len(dirs) == len(paths):
            raise ValueError(f"Give one folder, not {len(dirs)} ({[str(d) for d in dirs]}): a card describes one "
                             "folder of sessions or one synthetic corpus. Card each folder separately.")
        if dirs:
            raise ValueError(f"Give either one folder or session files, not a mix of both (folders: "
                             f"{[str(d) for d in dirs]}).")
        not_h5 = [str(p) for p in paths if p.suffix != ".h5"]
        if not_h5:
            raise ValueError(f"Not session files (.h5): {not_h5}. Give emosync session files or their folder.")
        sessions = sorted({p.resolve() for p in paths})
        root = Path(os.path.commonpath([p.parent for p in sessions]))
        _refuse_corpus_sessions(sessions, None)
    card = Path(card_yaml) if card_yaml is not None else root / CARD_YAML
    return CardInputs(root=root, name=root.name, sessions=sessions, card_yaml=card, corpus=corpus, audit=audit,
                      audit_stale=stale, extra_files=extra)


def _refuse_corpus_sessions(sessions: Sequence[Path], root: Path | None) -> None:
    """Refuse sessions of a synthetic corpus carded without it (as if they were recordings).

    A corpus session lives in ``CORPUS/sessions/``; without ``CORPUS/corpus.json`` as the card's
    root the card would lose the generator and the privacy audit and call the data recorded.
    ``root``: the folder carded (ancestors up to it are searched), None for session files
    (their folder and its parent are searched).
    """
    corpora: set[Path] = set()
    for path in sessions:
        parents = [parent for parent in path.parents if root is None or parent.is_relative_to(root)]
        for parent in parents[:2] if root is None else parents:
            if (parent / CORPUS_JSON).is_file():
                corpora.add(parent)
                break
    if corpora:
        raise ValueError(
            f"Sessions of {len(corpora)} synthetic corpus folder(s) ({sorted(str(c) for c in corpora)[:3]}) would be "
            "described as recordings, losing their generator and privacy audit. Card each corpus folder separately: "
            "`emosync card CORPUS` with the folder holding corpus.json."
        )


def audit_staleness(audit: dict[str, Any], corpus: dict[str, Any], corpus_sha256: str, name: str) -> str | None:
    """Why ``audit`` no longer describes ``corpus`` (None when it still does).

    The audit records the ``corpus.json`` it read (``inputs.corpus_sha256``) and its sequence ids
    (``inputs.sequence_ids``); an audit that records neither cannot vouch for the corpus as it is now.
    """
    recorded = audit.get("inputs") or {}
    ids = [str(seq.get("id")) for seq in corpus.get("sequences", [])]
    if recorded.get("corpus_sha256") is None or recorded.get("sequence_ids") is None:
        return (f"{name} does not record which corpus.json and sequences it audited (an older audit); "
                "run `emosync synth audit` again")
    if recorded["sequence_ids"] != ids:
        added = len(set(ids) - set(recorded["sequence_ids"]))
        removed = len(set(recorded["sequence_ids"]) - set(ids))
        return (f"the corpus changed after {name} was written ({added} sequence(s) added, {removed} removed); "
                "run `emosync synth audit` again")
    if recorded["corpus_sha256"] != corpus_sha256:
        return f"corpus.json changed after {name} was written; run `emosync synth audit` again"
    return None


def audit_files(root: Path) -> list[Path]:
    """``audit.json``, ``audit-2.json``... in ``root``, oldest first (``emosync synth audit`` never overwrites).

    The card reports the newest; all are hashed, so a new audit makes ``--check`` fail.
    """
    found = []
    for path in root.glob("audit*.json"):
        match = re.fullmatch(r"audit(?:-(\d+))?\.json", path.name)
        if match:
            found.append((int(match.group(1) or 1), path))
    return [path for _, path in sorted(found)]


def _corpus_sessions(root: Path, corpus: dict[str, Any], found: list[Path]) -> list[Path]:
    """The corpus's sessions: those ``corpus.json`` lists must exist; others found are kept with a warning."""
    listed = [root / str(seq["file"]) for seq in corpus.get("sequences", []) if "file" in seq]
    missing = [str(p.relative_to(root)) for p in listed if not p.is_file()]
    if missing:
        raise ValueError(
            f"{root / CORPUS_JSON} lists {len(missing)} session file(s) that do not exist, e.g. {missing[:3]}. "
            "Was the corpus moved or only partly copied? Sample it again or restore the files."
        )
    unlisted = sorted(set(found) - {p.resolve() for p in listed})
    if unlisted:
        logger.warning("%d session file(s) under %s are not listed in %s (described anyway), e.g. %s",
                       len(unlisted), root, CORPUS_JSON, unlisted[0].name)
    return sorted({p.resolve() for p in listed} | set(unlisted))


def hash_inputs(inputs: CardInputs, *, progress: Any = None) -> dict[str, str]:
    """SHA-256 of every input, keyed by its path relative to the root.

    ``card.yaml`` is keyed as ``card.yaml`` (``"absent"`` when there is none) wherever it lives,
    so a card can be checked against the same file wherever the folder moves.
    """
    hashes: dict[str, str] = {}
    for path in inputs.sessions:
        hashes[inputs.relative(path)] = file_sha256(path)
        if progress is not None:
            progress()
    for path in inputs.extra_files:
        hashes[inputs.relative(path)] = file_sha256(path)
    hashes[CARD_YAML] = file_sha256(inputs.card_yaml) if inputs.card_yaml.is_file() else "absent"
    return hashes


def combined_hash(hashes: dict[str, str]) -> str:
    """One SHA-256 over all input hashes (order-independent)."""
    return hashlib.sha256(json.dumps(sorted(hashes.items())).encode()).hexdigest()
