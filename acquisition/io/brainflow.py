"""Import a BrainFlow recording (a file written by ``DataFilter.write_file``) into a session.

BrainFlow's own recorders (``DataFilter.write_file``, the ``file://...`` streamer, the OpenBCI
GUI's BrainFlow export) write the board's data array transposed: one text line per sample, one
tab-separated column per *board row*, values printed with six decimals. Which row holds what
(EEG, EMG, the time stamp, markers) is not in the file: it depends on the board, so the board
must be named, and :func:`import_brainflow` asks BrainFlow (``BoardShim.get_*_channels``,
``get_sampling_rate``) which is why the optional ``brainflow`` package is needed
(``pip install "emosync[brainflow]"``, loaded lazily as in :mod:`acquisition.devices.brainflow_bridge`).

What is imported, and how, follows :class:`~acquisition.devices.brainflow_bridge.BrainFlowBridge`,
so an imported recording looks like one recorded live through the bridge:

- streams ``BrainFlow-<BOARD>-EEG`` and ``BrainFlow-<BOARD>-EMG`` (types EEG / EMG), with the
  bridge's row assignment (``shared_rows``: rows BrainFlow lists as both EEG and EMG go to
  one stream) and labels (``get_eeg_names``, else ``EEG1..``; ``EMG1..``);
- values: BrainFlow's ExG microvolts times ``1e-6``, stored as float64 **volts** (the file's
  six decimals are below a float32's precision for large offsets);
- time stamps: BrainFlow's timestamp row as it is, i.e. the host's Unix time (s) when each
  packet arrived. That is the stream's clock: no clock offsets are stored, and the session's
  ``start_time``/``start_lsl_time`` are the first sample's, so MNE's ``meas_date`` is its wall clock;
- markers: non-zero values of the marker row (``BoardShim.insert_marker``) become a string
  ``Markers`` stream (``3.0`` is written ``"3"``), at their samples' time stamps.

Other rows (accelerometer, battery, ...) are not imported.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from acquisition.devices.brainflow_bridge import (MICROVOLTS_TO_VOLTS, SHARED_ROWS, BoardRows, SharedRows, board_rows,
                                                  load_brainflow, plan_board_rows, resolve_board)
from acquisition.io.importing import new_session_file, source_metadata
from acquisition.session.format import StreamSpec
from acquisition.session.markers import marker_texts
from acquisition.session.writer import SessionWriter, check_output_path
from acquisition.utils.docs import fill_doc
from acquisition.utils.logs import logger, verbose

class BrainFlowFileError(ValueError):
    """The file is not a BrainFlow recording of the named board (nothing was written)."""


@dataclass
class _Board:
    """What BrainFlow says about a board: its rows and rate."""

    name: str
    board_id: int
    n_rows: int
    srate: float
    timestamp_row: int
    marker_row: int | None
    signals: list[BoardRows]


def _plan_signals(bf: Any, board_id: int, board_name: str, shared_rows: SharedRows) -> list[BoardRows]:
    """EEG and EMG rows with labels, assigned as the bridge assigns them (:func:`plan_board_rows`)."""
    plans = plan_board_rows(bf, board_id, shared_rows)
    if not plans:
        raise ValueError(f"BrainFlow board {board_name} has no EEG or EMG rows to import (EEG rows "
                         f"{board_rows(bf, board_id, 'EEG')}, EMG rows {board_rows(bf, board_id, 'EMG')}, "
                         f"shared_rows={shared_rows!r}).")
    return plans


def _describe_board(board: str | int, shared_rows: SharedRows) -> _Board:
    bf = load_brainflow()
    member = resolve_board(board, bf)
    board_id = int(member)
    try:
        marker_row: int | None = int(bf.BoardShim.get_marker_channel(board_id))
    except bf.BrainFlowError:
        marker_row = None
    return _Board(name=member.name, board_id=board_id, n_rows=int(bf.BoardShim.get_num_rows(board_id)),
                  srate=float(bf.BoardShim.get_sampling_rate(board_id)),
                  timestamp_row=int(bf.BoardShim.get_timestamp_channel(board_id)), marker_row=marker_row,
                  signals=_plan_signals(bf, board_id, member.name, shared_rows))


def _check_text(fname: Path) -> None:
    """Refuse a binary file before parsing it, saying what it starts with."""
    with open(fname, "rb") as f:
        head = f.read(4096)
    if not head:
        raise BrainFlowFileError(f"{fname} is empty: a BrainFlow recording has one line per sample.")
    try:
        head.decode("ascii")
    except UnicodeDecodeError:
        raise BrainFlowFileError(
            f"{fname} is not a BrainFlow recording: it is binary (starts with {head[:8]!r}), but "
            "DataFilter.write_file writes text, one tab-separated line per sample.") from None


def _ragged_line(fname: Path, n_columns: int) -> tuple[int, int] | None:
    """The first line (1-based) whose value count differs from ``n_columns``, and its count."""
    with open(fname, encoding="ascii") as f:
        for number, line in enumerate(f, 1):
            count = len(line.rstrip("\r\n").split("\t"))
            if line.strip() and count != n_columns:
                return number, count
    return None


def _ends_mid_line(fname: Path) -> bool:
    """True when the last line lacks its newline: ``write_file`` ends every line with one."""
    with open(fname, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def read_brainflow_file(fname: str | os.PathLike, n_rows: int) -> np.ndarray:
    """Read a file written by ``DataFilter.write_file``, checking it against the board's row count.

    Parameters
    ----------
    fname : path-like
        The BrainFlow recording (text, tab-separated, one line per sample).
    n_rows : int
        Rows of the board's data array (``BoardShim.get_num_rows``): values per line.

    Returns
    -------
    data : array of float, shape (n_rows, n_samples)
        The board's data array, as ``DataFilter.read_file`` returns it (units as BrainFlow gives them).

    Raises
    ------
    BrainFlowFileError
        If the file is empty, binary, cut off in the middle of a line (truncated), or has
        another number of values per line than the board has rows.
    """
    fname = Path(fname)
    if not fname.is_file():
        raise FileNotFoundError(f"No BrainFlow recording at {fname}.")
    _check_text(fname)
    try:
        data = np.loadtxt(fname, delimiter="\t", ndmin=2, dtype=np.float64, encoding="ascii")
    except ValueError:
        ragged = _ragged_line(fname, n_rows)
        if ragged is None:
            raise BrainFlowFileError(f"{fname} is not a BrainFlow recording: some values are not numbers "
                                     "(expected tab-separated numbers, one line per sample).") from None
        number, count = ragged
        what = " (the file ends in the middle of that line: it is truncated)" if _ends_mid_line(fname) else ""
        raise BrainFlowFileError(f"{fname}: line {number} has {count} values, not {n_rows}{what}. Pass the file "
                                 "as BrainFlow wrote it, in full.") from None
    if _ends_mid_line(fname):  # even with all its values, the last one may be cut short
        raise BrainFlowFileError(f"{fname}: line {data.shape[0]} has no line end (the file ends in the middle of "
                                 "that line: it is truncated). Pass the file as BrainFlow wrote it, in full.")
    if data.shape[1] != n_rows:
        raise BrainFlowFileError(
            f"{fname} has {data.shape[1]} values per line, but the board has {n_rows} rows: was it recorded with "
            "another board? Pass that board (board=...).")
    return data.T


def _signal_spec(board: _Board, plan: BoardRows, source_id: str) -> StreamSpec:
    n = len(plan.rows)
    return StreamSpec(
        name=f"BrainFlow-{board.name}-{plan.kind}", type=plan.kind, channel_count=n, channel_format="double64",
        nominal_srate=board.srate, source_id=f"{source_id}:{plan.kind}", channel_labels=plan.labels,
        channel_units=["V"] * n, channel_types=[plan.kind] * n,
        extra={"brainflow_board": board.name, "brainflow_board_id": board.board_id,
               "brainflow_rows": ",".join(map(str, plan.rows)),
               "unit_conversion": f"BrainFlow microvolts * {MICROVOLTS_TO_VOLTS:g} = volts",
               "clock": f"BrainFlow timestamp row {board.timestamp_row}: host Unix time (s) at reception"})


def _write_streams(writer: SessionWriter, board: _Board, data: np.ndarray,
                   source_id: str) -> tuple[dict[str, int], int]:
    """Write the EEG/EMG streams and, when the marker row holds any, the markers.

    Returns the channel count of each signal stream, by name, and the number of markers.
    """
    stamps = data[board.timestamp_row]
    streams = {}
    for plan in board.signals:
        spec = _signal_spec(board, plan, source_id)
        writer.add_stream(spec).append(data[plan.rows].T * MICROVOLTS_TO_VOLTS, stamps)
        streams[spec.name] = spec.channel_count
    if board.marker_row is None:
        return streams, 0
    at = np.flatnonzero(data[board.marker_row])
    if at.size:
        markers = writer.add_stream(StreamSpec("Markers", "Markers", 1, "string", 0.0, f"{source_id}:markers",
                                               channel_labels=["marker"], can_drop_samples=False))
        markers.append([[text] for text in marker_texts(data[board.marker_row, at])], stamps[at])
    return streams, int(at.size)


def _time_metadata(stamps: np.ndarray) -> dict[str, Any]:
    """Start of the recording: the first sample's Unix time, which is also the stamps' clock."""
    first = float(stamps[0])
    return {"start_time": _dt.datetime.fromtimestamp(first, _dt.timezone.utc).isoformat(),
            "start_unix_time": first, "start_lsl_time": first}


@verbose
@fill_doc
def import_brainflow(fname: str | os.PathLike, out: str | os.PathLike, *, board: str | int,
                     shared_rows: SharedRows = "eeg", subject_id: str = "sub-unknown", notes: str = "",
                     if_exists: str = "error", verbose: bool | str | int | None = None) -> dict[str, Any]:
    """Import a BrainFlow recording (``DataFilter.write_file``) into a new session.

    Parameters
    ----------
    fname : path-like
        The recording: text, one tab-separated line per sample, one value per board row.
    out : path-like
        The session file to create; never overwritten (see ``if_exists``).
    board : str | int
        The board that recorded it: a ``BoardIds`` name, case-insensitive, ``_BOARD``
        optional (``"synthetic"``, ``"cyton"``), or its id (``-1``, ``0``).
    shared_rows : ``"eeg"`` | ``"emg"`` | ``"both"``
        Where rows that BrainFlow lists as both EEG and EMG go (as for
        :class:`~acquisition.devices.brainflow_bridge.BrainFlowBridge`): the EEG stream
        (default), the EMG stream (a facial-EMG montage), or both.
    %(subject_notes)s
    %(if_exists)s
    %(verbose)s

    Returns
    -------
    report : dict
        ``source``, ``output``, ``board``, ``n_samples``, ``streams`` (name -> channel count),
        ``n_markers``, ``first_time_s``/``last_time_s`` (Unix time), ``backward_steps``
        (time stamps earlier than the one before: the host clock was set back) and ``warnings``.

    Raises
    ------
    BrainFlowFileError
        If the file is empty, binary, truncated, or does not match the board (nothing is written).
    ImportError
        If the ``brainflow`` package is missing (it says how to install it).
    FileExistsError
        If ``out`` exists and ``if_exists="error"``.

    Notes
    -----
    The file is read whole: an hour of a 32-row board at 250 Hz takes about 230 MB of memory
    while importing.
    """
    if shared_rows not in SHARED_ROWS:
        raise ValueError(f"shared_rows must be one of {list(SHARED_ROWS)}, got {shared_rows!r}.")
    fname, out = Path(fname), Path(out)
    if if_exists == "error":
        check_output_path(out)
    described = _describe_board(board, shared_rows)
    data = read_brainflow_file(fname, described.n_rows)
    stamps = data[described.timestamp_row]
    warnings = []
    backward = int(np.sum(np.diff(stamps) < 0))
    if backward:
        warnings.append(f"{backward} time stamp(s) earlier than the one before (the host clock was set back); "
                        "kept as recorded")
    metadata = {**source_metadata(fname, "brainflow-csv"), **_time_metadata(stamps),
                "brainflow_board": described.name}
    source_id = f"emosync-brainflow-import:{described.name}:{metadata['source_sha256'][:16]}"
    with new_session_file(out, if_exists=if_exists) as tmp:
        with SessionWriter(tmp, subject_id=subject_id, notes=notes, metadata=metadata) as writer:
            streams, n_markers = _write_streams(writer, described, data, source_id)
            report = {"source": str(fname), "output": str(out), "board": described.name,
                      "n_samples": int(stamps.size), "streams": streams, "n_markers": n_markers,
                      "first_time_s": float(stamps[0]), "last_time_s": float(stamps[-1]),
                      "backward_steps": backward, "warnings": warnings}
            writer.close(brainflow_import_report=json.dumps(report))
    for message in warnings:
        logger.warning("%s: %s", fname.name, message)
    logger.info("Imported %d samples of %s (%s) from %s into %s", stamps.size, described.name,
                ", ".join(report["streams"]), fname.name, out)
    return report
