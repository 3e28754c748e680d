"""SessionWindows: shapes, masks, normalisation, bad input."""

from __future__ import annotations

import logging
import pickle

import pytest
import torch
from torch.utils.data import DataLoader

from fusion.data import SessionWindows

from .conftest import write_small_session


def test_shapes_normalisation_and_labels(tmp_path):
    fname = write_small_session(tmp_path / "a.h5")
    ds = SessionWindows([fname], window_s=1.0, stride_s=0.5, clip_frames=4, image_size=16)
    assert len(ds) == 4  # span 2.97 s: starts 0, 0.5, 1.0, 1.5
    item = ds[1]
    assert item["rgb"].shape == (4, 3, 16, 16) and 0 <= item["rgb"].min() and item["rgb"].max() <= 1
    assert item["depth"].shape == (4, 1, 16, 16)
    assert torch.all(item["depth"] == 0)  # flat face at the median depth, no-reading pixels 0
    assert item["emg"].shape == (4, 200) and item["eeg"].shape == (3, 100)
    assert item["available"] == {"rgb": True, "depth": True, "emg": True, "eeg": True}
    assert item["time_s"] == pytest.approx(1.0) and item["session_index"] == 0
    emg = torch.cat([ds[i]["emg"] for i in range(len(ds))], 1)
    assert emg.mean().abs() < 0.2 and 0.8 < emg.std() < 1.2  # z-scored per channel (offset removed)
    assert torch.isnan(item["au"]).all() or item["au"].numel() == 0  # no ActionUnits stream
    pickle.loads(pickle.dumps(ds))  # no open h5py handle in the pickled dataset
    batch = next(iter(DataLoader(ds, batch_size=2, num_workers=1)))  # workers open their own files
    assert batch["rgb"].shape == (2, 4, 3, 16, 16) and batch["available"]["emg"].tolist() == [True, True]


def test_missing_modality_is_masked_with_a_log_line(tmp_path, emosync_log):
    a = write_small_session(tmp_path / "a.h5")
    b = write_small_session(tmp_path / "b.h5", with_eeg=False)
    with emosync_log.at_level(logging.WARNING, logger="emosync"):
        ds = SessionWindows([a, b], window_s=1.0, stride_s=1.0, clip_frames=2, image_size=8)
    assert "b.h5 has no ['eeg'] stream" in emosync_log.text
    items = [ds[i] for i in range(len(ds))]
    assert [it["available"]["eeg"] for it in items] == [True, True, False, False]
    assert items[-1]["eeg"].shape == (3, 100) and torch.all(items[-1]["eeg"] == 0)  # placeholder, right shape


def test_non_finite_windows_are_masked_and_counted(tmp_path, emosync_log):
    fname = write_small_session(tmp_path / "n.h5", nan_emg_at=250)  # sample 250 = 1.25 s
    with emosync_log.at_level(logging.WARNING, logger="emosync"):
        ds = SessionWindows([fname], window_s=1.0, stride_s=0.5, clip_frames=2, image_size=8)
    assert "2 of 4 emg windows have missing or non-finite data" in emosync_log.text
    mask = [ds[i]["available"]["emg"] for i in range(4)]
    assert mask == [True, False, False, True]
    assert all(torch.isfinite(ds[i]["emg"]).all() for i in range(4))


def test_rig_session_has_au_labels(rig_sessions):
    ds = SessionWindows(rig_sessions[:1], window_s=1.0, stride_s=1.0, clip_frames=4, image_size=32)
    item = ds[5]
    assert item["au"].shape == (17,) and torch.isfinite(item["au"]).all()
    assert item["emg"].shape == (8, 2000) and item["eeg"].shape == (32, 500)


def test_bad_input_errors(tmp_path):
    fname = write_small_session(tmp_path / "a.h5", duration_s=0.5)
    with pytest.raises(ValueError, match="too short"):
        SessionWindows([fname], window_s=1.0)
    with pytest.raises(ValueError, match="non-empty subset"):
        SessionWindows([fname], modalities=["audio"])
    with pytest.raises(ValueError, match="at least one session"):
        SessionWindows([])


def _add_face_boxes(fname, box, n=90, spurious=None):
    import numpy as np

    from acquisition import SessionWriter, StreamSpec

    boxes = np.tile(np.asarray(box, np.float32), (n, 1))
    boxes[::7] = np.nan  # frames without a face
    if spurious is not None:
        boxes[3] = spurious  # one wild detection must not move the crop
    writer = SessionWriter.append_to(fname)
    writer.add_stream(StreamSpec("RGB-FaceBox", "FaceBox", 4, "float32", 30.0, "fb")).append(
        boxes, np.arange(n) / 30)
    writer.close()


def test_face_crop_uses_annotate_boxes(tmp_path):
    import h5py
    import numpy as np

    fname = write_small_session(tmp_path / "a.h5")
    with h5py.File(fname, "r+") as f:  # a white 8x8 "face" at rows 4-12, columns 20-28 of a black frame
        rgb = f["streams/RGB/data"]
        frames = np.zeros(rgb.shape, np.uint8)
        frames[:, 4:12, 20:28] = 255
        rgb[...] = frames
    plain = tmp_path / "plain.h5"
    plain.write_bytes(fname.read_bytes())
    _add_face_boxes(fname, (20, 4, 28, 12), spurious=(0, 0, 32, 24))
    kwargs = dict(window_s=1.0, stride_s=1.0, clip_frames=2, image_size=16, modalities=["rgb", "depth"],
                  crop_margin=0.0)
    face = SessionWindows([fname], crop="face", **kwargs)[0]["rgb"]
    assert face.mean() > 0.95  # the crop is the face square, the black frame around it is gone
    for other in ("centre", "foreground"):
        assert SessionWindows([fname], crop=other, **kwargs)[0]["rgb"].mean() < 0.3
    with pytest.raises(ValueError, match="emosync annotate plain.h5"):  # no silent fallback to another crop
        SessionWindows([plain], crop="face", **kwargs)
    with pytest.raises(ValueError, match="crop must be one of"):
        SessionWindows([plain], crop="eyes", **kwargs)
