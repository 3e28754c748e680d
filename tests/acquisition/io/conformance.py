"""The one conformance check every importer passes, as MNE's ``_test_raw_reader`` is for its readers.

:func:`check_importer` imports a source the test made (so it knows what is in it) and checks what
every emosync importer promises, whatever the format:

1. **metadata**: the root attributes of a session (schema and version, ids, start time, software
   version) and of an import (source format, file name, import time); per stream its name, type,
   source id, rate, format, channel count, modality and unit, and channel labels / units that
   are either absent (the source named none) or one per channel;
2. **times**: time stamps and synchronized times finite and non-decreasing, one per sample;
3. **round trip**: the file opens with :func:`acquisition.open_session`, each stream's data has the
   shape and dtype its metadata announces, and equals what the test knows of the source;
4. **MNE**: each regular numeric stream converts with ``to_mne``: one channel per channel, the
   rate within 0.5 % of the nominal one, EEG/EMG in volts (the stored values, unscaled);
5. **never overwrites**: a second import to the same output raises ``FileExistsError`` and
   leaves the existing file byte for byte as it was;
6. **a damaged source**: a truncated copy either fails with an error naming the file (and writes
   nothing), or, for formats whose importer salvages what is complete (XDF, video), imports
   with a warning naming the file; a file of the wrong kind (a PNG image) fails with an error
   naming it and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from acquisition import SCHEMA_NAME, SCHEMA_VERSION, open_session
from acquisition.session.format import FRAME_ENCODINGS, LSL_DTYPES

ROOT_KEYS = ("schema", "schema_version", "session_id", "subject_id", "start_time", "software_version",
             "source_format", "source_file", "imported_time")
STREAM_KEYS = ("name", "type", "source_id", "nominal_srate", "channel_format", "channel_count", "modality", "unit",
               "channel_labels", "channel_units")
MODALITIES = ("rgb", "depth", "emg", "eeg", "markers", "au", "frame_index", "misc")
#: Relative tolerance of ``to_mne``'s rate against the nominal rate.
SFREQ_RTOL = 0.005

ImportFn = Callable[..., Any]


def truncate_file(source: Path, folder: Path, fraction: float = 0.5) -> Path:
    """A copy of ``source`` in ``folder`` cut to ``fraction`` of its bytes (a partial copy, a full disk)."""
    data = source.read_bytes()
    cut = folder / source.name
    cut.write_bytes(data[: int(len(data) * fraction)])
    return cut


def png_file(folder: Path) -> Path:
    """A small RGB PNG image: the wrong kind of file for every importer."""
    path = folder / "photo.png"
    cv2.imwrite(str(path), np.full((8, 8, 3), 128, np.uint8))
    return path


class _Warnings(logging.Handler):
    """Collects the emosync logger's warnings while installed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> _Warnings:
        logging.getLogger("emosync").addHandler(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        logging.getLogger("emosync").removeHandler(self)


def check_importer(import_fn: ImportFn, source: Path, tmp_path: Path, *,
                   known: dict[str, tuple[np.ndarray | None, np.ndarray | None]] | None = None,
                   atol: float = 0.0, time_atol: float = 0.0, truncated: str = "error",
                   truncate: Callable[[Path, Path], Path] = truncate_file,
                   wrong: Callable[[Path], Path] = png_file, **kwargs: Any) -> Path:
    """Run the conformance checks on one importer and one source; return the session it wrote.

    Parameters
    ----------
    import_fn : callable
        The importer, called as ``import_fn(source, out, **kwargs)``.
    source : Path
        A source file (or folder) the test wrote.
    tmp_path : Path
        A folder for the outputs and the damaged copies.
    known : dict | None
        Per stream name, ``(data, timestamps)`` the stream must hold (either may be None):
        data as the reader returns it, shape ``(n_samples, ...)``, volts for EEG/EMG.
    atol, time_atol : float
        Absolute tolerance of the data and of the time stamps (text formats round).
    truncated : ``"error"`` | ``"salvage"``
        What the importer does with a truncated copy (see the module docstring).
    truncate : callable
        ``truncate(source, folder) -> damaged copy``; default: the first half of the bytes.
    wrong : callable
        ``wrong(folder) -> a source of the wrong kind``; default: a PNG image.
    **kwargs
        Passed to every call of ``import_fn``.
    """
    out = tmp_path / "conformance.h5"
    import_fn(source, out, **kwargs)
    check_session(out, source, known=known, atol=atol, time_atol=time_atol)
    check_refuses_overwrite(import_fn, source, out, **kwargs)
    damaged = tmp_path / "truncated"
    damaged.mkdir()
    check_damaged(import_fn, truncate(source, damaged), damaged, salvage=truncated == "salvage", **kwargs)
    wrong_folder = tmp_path / "wrong"
    wrong_folder.mkdir()
    check_damaged(import_fn, wrong(wrong_folder), wrong_folder, salvage=False, **kwargs)
    return out


def check_session(out: Path, source: Path, *, known: dict | None = None, atol: float = 0.0,
                  time_atol: float = 0.0) -> None:
    """Checks 1 to 4 on a written session."""
    with open_session(out) as session:
        info = session.info
        missing = [key for key in ROOT_KEYS if key not in info]
        assert not missing, f"root attributes missing: {missing}"
        assert info["schema"] == SCHEMA_NAME and info["schema_version"] == SCHEMA_VERSION
        assert info["session_id"] and info["subject_id"] and info["software_version"]
        assert info["source_file"] == source.name, f"source_file is {info['source_file']!r}, not {source.name!r}"
        assert info["source_format"]
        dt.datetime.fromisoformat(str(info["imported_time"]))
        if info["start_time"]:  # XDF files without a recording date leave it empty, not invented
            dt.datetime.fromisoformat(str(info["start_time"]))
        assert session.streams, "no stream imported"
        for name, stream in session.streams.items():
            _check_stream_metadata(stream)
            _check_times(stream)
            _check_data(stream, *(known or {}).get(name, (None, None)), atol=atol, time_atol=time_atol)
            if _is_regular_numeric(stream):
                _check_to_mne(session, stream)
        unknown = set(known or {}) - set(session.streams)
        assert not unknown, f"streams {sorted(unknown)} were not imported; got {sorted(session.streams)}"


def _check_stream_metadata(stream: Any) -> None:
    missing = [key for key in STREAM_KEYS if key not in stream.info]
    assert not missing, f"stream {stream.name}: attributes missing: {missing}"
    assert stream.info["name"] == stream.name and stream.info["type"]
    assert stream.modality in MODALITIES
    assert stream.nominal_srate >= 0 and math.isfinite(stream.nominal_srate)
    count = int(stream.info["channel_count"])
    for key in ("channel_labels", "channel_units"):
        values = list(stream.info[key] or [])
        assert len(values) in (0, count), f"stream {stream.name}: {len(values)} {key} for {count} channels"
    if stream.modality in ("eeg", "emg") and stream.info["channel_units"]:
        assert set(stream.info["channel_units"]) == {"V"} and stream.info["unit"] == "V", stream.info["channel_units"]


def _check_times(stream: Any) -> None:
    stamps, times = stream.timestamps, stream.times
    assert stamps.shape == times.shape == (stream.n_samples,)
    assert np.all(np.isfinite(stamps)) and np.all(np.isfinite(times))
    assert np.all(np.diff(stamps) >= 0), f"stream {stream.name}: time stamps go backwards"
    assert np.all(np.diff(times) >= 0), f"stream {stream.name}: synchronized times go backwards"


def _expected_dtype(stream: Any) -> np.dtype:
    encoding = stream.info.get("encoding")
    if encoding:
        return np.dtype(FRAME_ENCODINGS[encoding]["dtype"])
    if stream.info["channel_format"] == "string":
        return np.dtype(object)
    return np.dtype(LSL_DTYPES[stream.info["channel_format"]])


def _check_data(stream: Any, data: np.ndarray | None, stamps: np.ndarray | None, *, atol: float,
                time_atol: float) -> None:
    frame_shape = stream.info.get("frame_shape")
    sample_shape = tuple(frame_shape) if stream.info.get("encoding") else (int(stream.info["channel_count"]),)
    assert stream.data.shape == (stream.n_samples, *sample_shape)
    values = stream.data[:]
    assert values.shape == stream.data.shape and values.dtype == _expected_dtype(stream) == stream.data.dtype
    if data is not None:
        if values.dtype == object:
            assert values.tolist() == np.asarray(data, dtype=object).tolist()
        else:
            np.testing.assert_allclose(values, data, rtol=0, atol=atol, err_msg=stream.name)
    if stamps is not None:
        np.testing.assert_allclose(stream.timestamps, stamps, rtol=0, atol=time_atol, err_msg=stream.name)


def _is_regular_numeric(stream: Any) -> bool:
    return (not stream.info.get("encoding") and stream.info["channel_format"] != "string"
            and stream.nominal_srate > 0 and stream.n_samples > 1)


def _check_to_mne(session: Any, stream: Any) -> None:
    raw = session.to_mne([stream.name], markers=None)
    assert len(raw.ch_names) == int(stream.info["channel_count"])
    assert raw.info["sfreq"] == pytest.approx(stream.nominal_srate, rel=SFREQ_RTOL)
    if stream.modality in ("eeg", "emg"):  # stored in volts: MNE gets the values unscaled
        np.testing.assert_allclose(raw.get_data(), np.asarray(stream.data[:], dtype=np.float64).T, rtol=1e-12)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_refuses_overwrite(import_fn: ImportFn, source: Path, out: Path, **kwargs: Any) -> None:
    """Check 5: an existing output is refused and left as it was."""
    before, mtime = _sha256(out), out.stat().st_mtime_ns
    with pytest.raises(FileExistsError, match=out.name):
        import_fn(source, out, **kwargs)
    assert _sha256(out) == before and out.stat().st_mtime_ns == mtime


def check_damaged(import_fn: ImportFn, source: Path, folder: Path, *, salvage: bool, **kwargs: Any) -> None:
    """Check 6: a damaged or wrong source fails naming the file, leaving nothing; or is salvaged with a warning."""
    out = folder / "damaged.h5"
    before = sorted(p.name for p in folder.iterdir())
    # A folder source (depth images) is named by the folder or by the file in it that is wrong.
    names = [source.name, *(sorted(p.name for p in source.iterdir()) if source.is_dir() else [])]
    with _Warnings() as caught:
        if salvage:
            import_fn(source, out, **kwargs)
        else:
            with pytest.raises(Exception) as raised:  # noqa: PT011 -- each importer has its own error type
                import_fn(source, out, **kwargs)
            assert isinstance(raised.value, (ValueError, OSError)), repr(raised.value)
            assert any(name in str(raised.value) for name in names), f"the error names none of {names}: {raised.value}"
    if salvage:
        assert any(name in m for m in caught.messages for name in names), f"no warning names {names}: {caught.messages}"
        with open_session(out) as session:
            for stream in session.streams.values():
                _check_times(stream)
        shutil.move(out, folder.parent / "salvaged.h5")
    assert sorted(p.name for p in folder.iterdir()) == before, "a failed import left files behind"
