"""A session as one MNE ``Raw``, and as one FIF, EDF, BDF or BrainVision file.

A session stores what LSL delivered (raw stamps, clock offsets, volts); scientists analyse in
MNE. The conversion itself is :func:`acquisition.session.to_mne.to_mne` (behind
:meth:`Session.to_mne <acquisition.session.reader.Session.to_mne>`), whose module docstring
states the conventions (channel types, volts, effective rate, ``meas_date``, markers as
annotations, several rates); ``docs/mne-export.md`` gives the reasons. This module adds what
the file exports share: opening a session given by path, refusing to overwrite, padding EDF
records, and routing the writers' warnings to the emosync log. :mod:`acquisition.io.bids`
writes BIDS, :mod:`acquisition.io.export` CSV and the one entry point for every format.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mne
import numpy as np

from acquisition.session.reader import Session, opened_session
from acquisition.utils.docs import fill_doc
from acquisition.utils.logs import logger, verbose


def to_mne(session: Session | str | os.PathLike, streams: str | list[str] | None = None,
           **kwargs: Any) -> mne.io.RawArray:
    """Convert a session, open or by path, to one :class:`mne.io.RawArray`.

    The same as :meth:`Session.to_mne <acquisition.session.reader.Session.to_mne>`, which
    documents the options (``streams``, ``markers``, ``sync_options``, ``sfreq``,
    ``pair_expression_markers``, ``line_freq``, ``verbose``); a path is opened and closed here.
    """
    with opened_session(session) as opened:
        return opened.to_mne(streams, **kwargs)


@contextlib.contextmanager
def warnings_to_log(what: str) -> Iterator[None]:
    """Route warnings of MNE / mne-bids / edfio to the emosync logger (the CLI shows them once)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        logger.warning("%s: %s", what, warning.message)


def check_export_path(path: Path, overwrite: bool) -> Path:
    """Refuse an existing output unless ``overwrite``, and an output in a folder that does not exist."""
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) to replace it.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"Cannot write {path}: directory {path.parent} does not exist. Create it first.")
    return path


def pad_for_edf(raw: mne.io.BaseRaw) -> mne.io.BaseRaw:
    """Pad a Raw of non-integer rate to whole EDF data records, as MNE itself does for integer rates.

    EDF/BDF rates are integers per data record; for a rate like 1999.99 Hz MNE writes records of
    ``floor(sfreq)`` samples but does not pad the last one (edfio then refuses the file). The
    appended edge values are annotated ``BAD_ACQ_SKIP``, exactly as MNE marks its own padding.
    """
    sfreq = raw.info["sfreq"]
    per_record = int(np.floor(sfreq))
    pad = (-raw.n_times) % per_record
    if float(sfreq).is_integer() or pad == 0:
        return raw
    data = np.pad(raw.get_data(), ((0, 0), (0, pad)), mode="edge")
    padded = mne.io.RawArray(data, raw.info.copy(), verbose=False)
    padded.set_annotations(raw.annotations.copy())
    # Cover the padded samples but end half a sample early: EDF rounds the record duration, and a
    # reader whose rate comes out a few ppm higher would otherwise see the annotation overrun the data.
    padded.annotations.append(raw.n_times / sfreq, (pad - 0.5) / sfreq, "BAD_ACQ_SKIP")
    logger.warning("EDF/BDF need whole data records: %.3g s of edge values were appended (annotated BAD_ACQ_SKIP).",
                   pad / sfreq)
    return padded


@verbose
@fill_doc
def export_raw_file(session: Session | str | os.PathLike, fname: str | os.PathLike, fmt: str, *,
                    overwrite: bool = False, physical_range: str = "channelwise",
                    verbose: bool | str | int | None = None, **to_mne_kwargs: Any) -> list[Path]:
    """Write one FIF, EDF, BDF or BrainVision file with MNE's writers.

    Parameters
    ----------
    %(session_or_path)s
    fname : path-like
        Output file: ``*_raw.fif``, ``*.edf``, ``*.bdf`` or ``*.vhdr`` (BrainVision writes
        ``.vhdr``, ``.vmrk`` and ``.eeg`` side by side).
    fmt : ``"fif"`` | ``"edf"`` | ``"bdf"`` | ``"brainvision"``
        The format.
    %(overwrite)s
    physical_range : str
        EDF/BDF physical range (see :func:`mne.export.export_raw`); ``"channelwise"`` gives
        every channel the full 16-bit (EDF) or 24-bit (BDF) resolution of its own range.
    %(verbose)s
    **to_mne_kwargs
        Passed to :func:`to_mne` (``streams``, ``markers``, ``sfreq``, ``sync_options``...).

    Returns
    -------
    files : list of Path
        The files written (the header file for BrainVision).
    """
    fname = check_export_path(Path(fname), overwrite)
    raw = to_mne(session, **to_mne_kwargs)
    with warnings_to_log(f"{fmt} export"), warnings.catch_warnings():
        # pybv stores float32 (7 significant digits, far below EMG/EEG noise); MNE hands it float64.
        warnings.filterwarnings("ignore", message="Encountered data in 'double' format")
        if fmt == "fif":
            raw.save(fname, overwrite=overwrite, verbose=False)
        elif fmt in ("edf", "bdf"):
            mne.export.export_raw(fname, pad_for_edf(raw), fmt=fmt, overwrite=overwrite, verbose=False,
                                  physical_range=physical_range)
        elif fmt == "brainvision":
            mne.export.export_raw(fname, raw, fmt=fmt, overwrite=overwrite, verbose=False)
        else:
            raise ValueError(f"fmt must be one of 'fif', 'edf', 'bdf', 'brainvision', got {fmt!r}.")
    return [fname]
