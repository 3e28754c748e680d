"""Every importer passes the one conformance check (``conformance.check_importer``), and the check can fail."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from acquisition.io.depth import import_depth
from acquisition.io.table import import_table
from acquisition.io.video import import_video
from acquisition.io.xdf import import_xdf

from .conformance import check_importer, check_session, truncate_file
from .test_table_import import SPEC, _write_table
from .test_video_sources import _cv2_frames, _write_clip
from .xdf_writer import XDFWriter


def test_xdf(tmp_path):
    rng = np.random.default_rng(2)
    eeg = rng.normal(scale=50, size=(600, 3)).astype(np.float32)
    stamps = 5000.0 + np.arange(600) / 200
    source = tmp_path / "rec.xdf"
    with XDFWriter(source) as w:
        w.add_stream(1, "EEG", "EEG", 3, 200.0, "float32", source_id="eeg-1", channel_labels=["Fz", "Cz", "Pz"],
                     channel_units=["microvolts"] * 3, channel_types=["EEG"] * 3)
        w.add_stream(2, "Markers", "Markers", 1, 0.0, "string", source_id="mk-1")
        for k in range(6):
            w.write_samples(1, eeg[100 * k : 100 * (k + 1)], stamps[100 * k : 100 * (k + 1)])
            w.write_samples(2, [[f"m{k}"]], [stamps[100 * k] + 0.01])
            for stream_id in (1, 2):
                w.write_clock_offset(stream_id, stamps[100 * k], 2.0 + 1e-5 * k)
        w.write_footer(1)
        w.write_footer(2)
    known = {"EEG": (eeg.astype(np.float64) * 1e-6, stamps),
             "Markers": ([[f"m{k}"] for k in range(6)], stamps[::100] + 0.01)}
    # float32 microvolts become float32 volts: 7 significant digits, about 1e-11 V here.
    check_importer(import_xdf, source, tmp_path, known=known, atol=2e-11, truncated="salvage")


def test_video(tmp_path):
    source = tmp_path / "clip.avi"
    _write_clip(source, n_frames=20, fps=20.0)
    known = {"RGB": (_cv2_frames(source), np.arange(20) / 20.0)}
    check_importer(import_video, source, tmp_path, known=known, time_atol=1e-6, truncated="salvage")


def _depth_folder(folder):
    folder.mkdir()
    frames = np.random.default_rng(3).integers(400, 4000, (5, 12, 16)).astype(np.uint16)
    for k, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{k:04d}.png"), frame)
    return frames


def _truncate_last_frame(source, folder):
    copy = folder / source.name
    shutil.copytree(source, copy)
    truncate_file(sorted(copy.glob("*.png"))[-1], copy)
    return copy


def _colour_folder(folder):
    """Folder of 8-bit colour PNGs where depth frames are expected."""
    wrong = folder / "photos"
    wrong.mkdir()
    cv2.imwrite(str(wrong / "0001.png"), np.full((8, 8, 3), 128, np.uint8))
    return wrong


def test_depth(tmp_path):
    source = tmp_path / "frames"
    frames = _depth_folder(source)
    known = {"Depth": (frames, np.arange(5) / 15.0)}
    check_importer(import_depth, source, tmp_path, known=known, time_atol=1e-12, truncate=_truncate_last_frame,
                   wrong=_colour_folder, rate=15.0)


def test_table(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    source = tmp_path / "t.csv"
    zyg, corr = _write_table(source)
    known = {"EMG": (np.column_stack([zyg, corr]) * 1e-6, np.arange(1000) / 250)}
    check_importer(lambda src, out: import_table(src, out, spec), source, tmp_path, known=known, atol=1e-18)


def test_the_check_fails_on_a_defective_session(tmp_path):
    """Known data that differ, and a stream whose time stamps go backwards, are caught."""
    source = tmp_path / "clip.avi"
    _write_clip(source, n_frames=6, fps=12.0)
    out = tmp_path / "s.h5"
    import_video(source, out)
    frames = _cv2_frames(source)
    check_session(out, source, known={"RGB": (frames, None)})
    with pytest.raises(AssertionError):
        check_session(out, source, known={"RGB": (frames[::-1], None)})
    with pytest.raises(AssertionError, match="not imported"):
        check_session(out, source, known={"Depth": (None, None)})
    with pytest.raises(AssertionError, match="source_file|attributes missing"):
        check_session(out, tmp_path / "other.avi")
    import h5py

    with h5py.File(out, "r+") as f:
        f["streams/RGB/timestamps"][:2] = [5.0, 1.0]
    with pytest.raises(AssertionError, match="backwards"):
        check_session(out, source)


def test_the_check_fails_on_an_importer_that_overwrites_or_hides_the_file_name(tmp_path):
    source = tmp_path / "clip.avi"
    _write_clip(source, n_frames=20, fps=20.0)

    def overwriting(src, out):
        out.unlink(missing_ok=True)
        return import_video(src, out)

    (tmp_path / "a").mkdir()
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        check_importer(overwriting, source, tmp_path / "a")

    def vague(src, out):
        if src.suffix != ".avi":
            raise ValueError("bad input")
        return import_video(src, out)

    (tmp_path / "b").mkdir()
    with pytest.raises(AssertionError, match="names none of"):
        check_importer(vague, source, tmp_path / "b", truncated="salvage")
