"""``sessions.csv``: one row per session, the table the Croissant file describes (it cannot read HDF5).

Columns are fixed (file, hash, subject, synthetic flag, duration, expressions...) plus three
per stream name found in the corpus (``<stream>_nominal_hz``, ``<stream>_effective_hz``,
``<stream>_n_samples``), empty where a session lacks that stream. :func:`manifest_columns`
gives each column's Croissant data type, so the CSV and its description cannot drift apart.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from data_cards.stats import CorpusStats, SessionStats

#: (column, Croissant data type, description) of the fixed columns.
FIXED_COLUMNS: list[tuple[str, str, str]] = [
    ("file", "Text", "Session file (HDF5), relative to the corpus folder."),
    ("sha256", "Text", "SHA-256 of the session file."),
    ("size_bytes", "Integer", "File size in bytes."),
    ("session_id", "Text", "Session identifier stored in the file."),
    ("subject_id", "Text", "Pseudonymous subject identifier (never a name)."),
    ("synthetic", "Boolean", "True when no person was recorded (simulated or generated data)."),
    ("start_time", "Text", "Session start, ISO 8601 UTC, as stored in the file."),
    ("duration_s", "Float", "Longest stream span (synchronized times), seconds."),
    ("n_streams", "Integer", "Number of streams in the session."),
    ("streams", "Text", "Stream names, separated by ';'."),
    ("n_expressions_micro", "Integer", "Micro-expressions bounded by onset/offset markers."),
    ("n_expressions_macro", "Integer", "Macro-expressions bounded by onset/offset markers."),
    ("expression_labels", "Text", "Expression counts as 'emotion/kind=n', separated by ';'."),
    ("generator_sequence", "Text", "Synthetic corpora: the sequence id in corpus.json."),
    ("generator_emotion", "Text", "Synthetic corpora: the emotion the generator was conditioned on."),
    ("generator_kind", "Text", "Synthetic corpora: micro or macro, as conditioned."),
    ("generator_seed", "Integer", "Synthetic corpora: the sampling seed of the sequence."),
]


def column_name(stream: str) -> str:
    """A stream name as a CSV column / Croissant field prefix (letters, digits and ``_`` only)."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", stream).strip("_") or "stream"


def stream_prefixes(stats: CorpusStats) -> dict[str, str]:
    """Stream name -> unique column prefix."""
    prefixes: dict[str, str] = {}
    used: set[str] = {name for name, *_ in FIXED_COLUMNS}
    for name in stats.streams:
        base = prefix = column_name(name)
        n = 2
        while any(f"{prefix}_{suffix}" in used for suffix in ("nominal_hz", "effective_hz", "n_samples")):
            prefix, n = f"{base}_{n}", n + 1
        used.update(f"{prefix}_{suffix}" for suffix in ("nominal_hz", "effective_hz", "n_samples"))
        prefixes[name] = prefix
    return prefixes


def manifest_columns(stats: CorpusStats) -> list[tuple[str, str, str]]:
    """All columns of ``sessions.csv`` as ``(name, Croissant data type, description)``."""
    columns = list(FIXED_COLUMNS)
    for name, prefix in stream_prefixes(stats).items():
        columns += [
            (f"{prefix}_nominal_hz", "Float", f"Stream {name!r}: nominal rate, Hz (0: irregular)."),
            (f"{prefix}_effective_hz", "Float", f"Stream {name!r}: effective rate from synchronized time stamps, Hz."),
            (f"{prefix}_n_samples", "Integer", f"Stream {name!r}: number of samples."),
        ]
    return columns


def _row(session: SessionStats, prefixes: dict[str, str], sequence: dict[str, Any] | None) -> dict[str, Any]:
    labels = ";".join(f"{emotion}/{kind}={n}" for (emotion, kind), n in sorted(session.expressions.items()))
    row: dict[str, Any] = {
        "file": session.file, "sha256": session.sha256, "size_bytes": session.size_bytes,
        "session_id": session.session_id, "subject_id": session.subject_id,
        "synthetic": "true" if session.synthetic else "false", "start_time": session.start_time,
        "duration_s": f"{session.duration_s:.6f}", "n_streams": len(session.streams),
        "streams": ";".join(s.name for s in session.streams), "n_expressions_micro": session.n_micro,
        "n_expressions_macro": session.n_macro, "expression_labels": labels,
    }
    if sequence is not None:
        row.update(generator_sequence=sequence.get("id", ""), generator_emotion=sequence.get("emotion", ""),
                   generator_kind=sequence.get("kind", ""), generator_seed=sequence.get("seed", ""))
    for st in session.streams:
        prefix = prefixes[st.name]
        row[f"{prefix}_nominal_hz"] = f"{st.nominal_srate_hz:g}"
        row[f"{prefix}_effective_hz"] = "" if st.effective_srate_hz is None else f"{st.effective_srate_hz:.6f}"
        row[f"{prefix}_n_samples"] = st.n_samples
    return row


def manifest_csv(stats: CorpusStats, corpus: dict[str, Any] | None = None) -> str:
    """The text of ``sessions.csv``.

    Parameters
    ----------
    stats : CorpusStats
        The corpus statistics (one row per session, in their order).
    corpus : dict | None
        ``corpus.json`` of a synthetic corpus: fills the ``generator_*`` columns.
    """
    sequences = {str(seq.get("file")): seq for seq in (corpus or {}).get("sequences", [])}
    prefixes = stream_prefixes(stats)
    names = [name for name, *_ in manifest_columns(stats)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n", restval="")
    writer.writeheader()
    for session in stats.sessions:
        writer.writerow(_row(session, prefixes, sequences.get(session.file)))
    return buffer.getvalue()
