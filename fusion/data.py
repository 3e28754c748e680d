"""Windows over sessions for multi-view pretraining: one item = one moment seen by every modality.

Windows of ``window_s`` seconds every ``stride_s`` seconds are anchored on the video frame
clock (the RGB stream's synchronized :attr:`~acquisition.Stream.times`). Each item holds the
views that exist for that moment, an availability mask per modality, and labels that are
used for evaluation only (mean AU intensities, expression and its kind from the session's
``Markers`` stream, subject id, session index, window centre time).

Expression labels: markers ``"onset/<emotion>/<kind>"`` ... ``"offset/<emotion>/<kind>"`` (the
simulated rig's format, see :meth:`synth.facs.AUTimeline.markers`) delimit expressions, paired on
synchronized times by :func:`acquisition.session.markers.parse_expression_markers` (only complete
expressions count); a window is labelled with the expression whose onset->offset interval contains
the window centre, else ``"neutral"`` / kind ``"none"``. A session without a markers stream gives
``"unknown"`` labels, which the probes skip. With ``centres`` the windows are not a regular grid but one
per given time (e.g. the apex of each expression, for :mod:`fusion.recognition`). Splits:
:func:`split_sessions` (held-out sessions) and :func:`split_by_subject` (held-out subjects, from the
session's root ``subject_id``).

HDF5 handles do not pickle: the index is built once in ``__init__`` (files closed again) and
each worker process opens its own handles on first use in ``__getitem__``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from acquisition import Session, logger, open_session
from acquisition.session.markers import expression_intervals, marker_texts
from acquisition.session.alignment import sample_range

MODALITIES = ("rgb", "depth", "emg", "eeg")
VIDEO = ("rgb", "depth")
NEUTRAL = "neutral"          # expression label of a window with no expression at its centre
NO_KIND = "none"             # kind of a neutral window
UNKNOWN = "unknown"          # label of every window of a session without a markers stream
SIGNALS = ("emg", "eeg")
CROPS = ("centre", "foreground", "face")   # see SessionWindows


@dataclass
class _SessionIndex:
    """What one session contributes: stream names, per-window indices and validity, normalisation stats."""

    fname: Path
    streams: dict[str, str]                    # modality -> stream name
    starts: np.ndarray                         # (n_windows,) window start, seconds
    frames: dict[str, np.ndarray] = field(default_factory=dict)   # video: (n_windows, clip_frames) frame indices
    first: dict[str, np.ndarray] = field(default_factory=dict)    # signals: (n_windows,) first sample index
    valid: dict[str, np.ndarray] = field(default_factory=dict)    # (n_windows,) bool
    mean: dict[str, np.ndarray] = field(default_factory=dict)     # signals: (n_chans,); video: (C, S, S)
    std: dict[str, np.ndarray] = field(default_factory=dict)      # signals: (n_chans,); video: scalar
    au: np.ndarray | None = None               # (n_windows, n_aus) mean intensities
    expression: np.ndarray | None = None       # (n_windows,) str, None without a markers stream
    kind: np.ndarray | None = None             # (n_windows,) str: micro / macro / none
    subject: str = "sub-unknown"
    crop_box: tuple[float, float, float, float] | None = None   # (top, left, bottom, right) as frame fractions


def _spread_rows(n_samples: int, k: int) -> np.ndarray:
    """At most ``k`` row indices spread evenly over ``n_samples`` rows (first and last included)."""
    return np.unique(np.linspace(0, n_samples - 1, min(k, n_samples)).astype(int))


def label_windows(centres: np.ndarray, intervals: Sequence[tuple[float, float, str, str]]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Expression and kind of each window centre, shapes (n,) and (n,) of str.

    A centre inside ``[onset, offset]`` of an interval gets its emotion and kind, else
    :data:`NEUTRAL` and :data:`NO_KIND` (expressions do not overlap; if they did, the last wins).
    """
    centres = np.asarray(centres, dtype=np.float64)
    expression = np.full(len(centres), NEUTRAL, dtype=object)
    kind = np.full(len(centres), NO_KIND, dtype=object)
    for onset, offset, emotion, k in intervals:
        inside = (centres >= onset) & (centres <= offset)
        expression[inside], kind[inside] = emotion, k
    return expression, kind

class SessionWindows(Dataset):
    """Fixed-length multi-modal windows over one or many sessions.

    Parameters
    ----------
    sessions : sequence of path-like
        Session files (``.h5``). Each must have an RGB stream (the anchor clock).
    window_s : float
        Window length, seconds.
    stride_s : float
        Step between window starts, seconds.
    modalities : sequence of str
        Views to return, among ``rgb``, ``depth``, ``emg``, ``eeg``.
    clip_frames : int
        Frames per video clip, evenly spaced in the window (nearest frame in time).
    image_size : int
        Square side of resized frames (centre crop to a square, then bilinear resize).
    stats_max_samples : int
        Rows read per session (evenly spaced) to estimate EMG/EEG channel mean and std.
    lead_s : mapping of str to float | None
        Per signal modality, seconds by which its window starts before the video window (facial EMG
        leads the visible motion by tens of ms), e.g. ``{"emg": 0.03}``.
    depth_scale_mm : float
        Depth is ``(depth_mm - median of the clip's foreground pixels) / depth_scale_mm``, so camera
        distance is not a shortcut; pixels without a reading (0) become 0; values are clipped to
        +-``depth_clip``. Foreground: valid pixels within ``foreground_mm`` of the clip's nearest one
        (the head; without a depth reading near it, all valid pixels).
    centres : sequence of array of float | None
        One array per session: window centres in seconds (synchronized, recorder clock). Windows
        are then centred at those times, in that order (item ``k`` of a session is its ``k``-th
        centre), instead of every ``stride_s`` over the session; a window that reaches past the
        recording is masked as unavailable, as any window with missing data. None: the regular grid.
    video_norm : ``"none"`` | ``"session"``
        ``session``: subtract the session's mean frame (after crop and resize, over 32 frames
        sampled across the session) and divide by the pixel std of the deviations, as EMG/EEG are
        z-scored per session: what stays is how this moment differs from the person's usual look
        (pose, muscle activity), not who the person is.
    crop : ``"centre"`` | ``"foreground"`` | ``"face"``
        ``centre``: the central square of the frame. ``foreground``: one square box per session
        around the depth foreground (the head, over frames sampled across the session, plus
        ``crop_margin`` of its side on each side), used for RGB and depth alike (registered
        cameras); head motion stays visible inside it. Sessions without depth fall back to centre.
        ``face``: the same kind of box around the face that ``emosync annotate`` found (the
        ``<video>-FaceBox`` stream, its 2nd-98th percentile extent over the frames with a face);
        a session without it is an error, not a silent fallback: a model trained on one kind of
        crop and evaluated on another sees a different scale of face.

    Notes
    -----
    Item keys: ``rgb`` (T, 3, S, S) float in [0, 1]; ``depth`` (T, 1, S, S); ``emg`` (n_chans, n_times)
    and ``eeg`` (n_chans, n_times) z-scored per channel; ``available`` dict of bool per modality;
    ``au`` (n_aus,) mean AU intensity (NaN without an ``ActionUnits`` stream); ``expression`` and
    ``kind`` (str, see the module docstring); ``subject`` (str, the session's ``subject_id``); ``session_index``;
    ``time_s`` window centre (seconds, recorder clock). An unavailable view is zeros of the right
    shape, so a batch always has every modality (every encoder runs every step, as DDP requires).
    """

    def __init__(self, sessions: Sequence[str | os.PathLike], *, window_s: float = 1.0, stride_s: float = 0.5,
                 modalities: Sequence[str] = MODALITIES, clip_frames: int = 8, image_size: int = 64,
                 stats_max_samples: int = 50_000, depth_scale_mm: float = 100.0,
                 lead_s: Mapping[str, float] | None = None, crop: str = "centre", foreground_mm: float = 400.0,
                 crop_margin: float = 0.15, depth_clip: float = 10.0, video_norm: str = "none",
                 centres: Sequence[np.ndarray] | None = None) -> None:
        if not sessions:
            raise ValueError("SessionWindows needs at least one session file.")
        if centres is not None and len(centres) != len(sessions):
            raise ValueError(f"centres needs one array per session: got {len(centres)} for {len(sessions)} sessions.")
        self._centres = None if centres is None else [np.asarray(c, dtype=np.float64).reshape(-1) for c in centres]
        unknown = sorted(set(modalities) - set(MODALITIES))
        if unknown or not modalities:
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {list(modalities)}.")
        if window_s <= 0 or stride_s <= 0:
            raise ValueError(f"window_s and stride_s must be > 0, got {window_s} and {stride_s}.")
        self.window_s, self.stride_s = float(window_s), float(stride_s)
        self.clip_frames, self.image_size = int(clip_frames), int(image_size)
        self.depth_scale_mm = float(depth_scale_mm)
        self.stats_max_samples = int(stats_max_samples)
        if crop not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {crop!r}.")
        self.crop, self.foreground_mm, self.crop_margin = crop, float(foreground_mm), float(crop_margin)
        self.depth_clip = float(depth_clip)
        if video_norm not in ("none", "session"):
            raise ValueError(f"video_norm must be 'none' or 'session', got {video_norm!r}.")
        self.video_norm = video_norm
        self.lead_s = {m: float(v) for m, v in (lead_s or {}).items()}
        bad = sorted(set(self.lead_s) - set(SIGNALS))
        if bad:
            raise ValueError(f"lead_s applies to signal modalities {SIGNALS} only, got {bad}.")
        self.fnames = [Path(f) for f in sessions]
        self.n_times: dict[str, int] = {}
        self.n_chans: dict[str, int] = {}
        self.n_aus = 0
        self._index = [self._build(i, f, list(modalities)) for i, f in enumerate(self.fnames)]
        self.modalities = [m for m in modalities if any(m in s.streams for s in self._index)]
        dropped = [m for m in modalities if m not in self.modalities]
        if dropped:
            logger.warning("No session has %s: dropped from the dataset.", dropped)
        if not self.modalities:
            raise ValueError(f"None of the sessions has any of the modalities {list(modalities)}.")
        self._items = np.concatenate([np.stack([np.full(len(s.starts), i), np.arange(len(s.starts))], 1)
                                      for i, s in enumerate(self._index)]).astype(np.int64)
        if len(self._items) == 0:
            raise ValueError(f"No window of {window_s} s fits in the sessions {[f.name for f in self.fnames]}: "
                             "they are too short.")
        self._open: dict[int, Session] = {}
        self._pid = os.getpid()

    # -- index ---------------------------------------------------------------
    def _build(self, i: int, fname: Path, modalities: list[str]) -> _SessionIndex:
        with open_session(fname) as session:
            by_modality: dict[str, str] = {}
            for name, stream in session.streams.items():
                by_modality.setdefault(stream.modality, name)
            if "rgb" not in by_modality:
                raise ValueError(f"{fname.name} has no RGB stream; windows are anchored on the video frame clock. "
                                 f"Streams: {sorted(session.streams)}.")
            present = {m: by_modality[m] for m in modalities if m in by_modality}
            missing = [m for m in modalities if m not in present]
            if not present:
                raise ValueError(f"{fname.name} has none of the modalities {modalities}.")
            if missing:
                logger.warning("%s has no %s stream: marked unavailable for its windows.", fname.name, missing)
            anchor = session.streams[by_modality["rgb"]].times
            if self._centres is not None:
                starts = self._centres[i] - self.window_s / 2
            else:
                span = float(anchor[-1] - anchor[0]) if len(anchor) else 0.0
                n = int(np.floor((span - self.window_s) / self.stride_s)) + 1 if span >= self.window_s else 0
                if n <= 0:
                    logger.warning("%s is %.2f s long, shorter than one %.2f s window: skipped.", fname.name, span,
                                   self.window_s)
                starts = float(anchor[0]) + np.arange(max(n, 0)) * self.stride_s if len(anchor) else np.zeros(0)
            index = _SessionIndex(fname, present, starts)
            for m, name in present.items():
                stream = session.streams[name]
                if m in VIDEO:
                    self._index_video(index, m, stream)
                else:
                    self._index_signal(index, m, stream)
                bad = int((~index.valid[m]).sum())
                if bad:
                    logger.warning("%s: %d of %d %s windows have missing or non-finite data: masked.", fname.name,
                                   bad, len(starts), m)
            if self.crop != "centre" and any(m in VIDEO for m in present):
                index.crop_box = self._crop_box(session, by_modality["rgb"], by_modality.get("depth"), fname)
            if self.video_norm == "session":
                for m in (m for m in present if m in VIDEO):
                    self._video_stats(index, m, session.streams[present[m]])
            au = next((s for s in session.streams.values() if s.modality == "au"), None)
            if au is not None and au.n_samples:
                values = np.asarray(au.data[:], dtype=np.float64)
                ranges = [sample_range(au, t, t + self.window_s) for t in starts]
                index.au = np.stack([values[a:b].mean(0) if b > a else np.full(values.shape[1], np.nan)
                                     for a, b in ranges]) if len(starts) else np.zeros((0, values.shape[1]))
                self.n_aus = max(self.n_aus, values.shape[1])
            index.subject = str(session.info.get("subject_id", "sub-unknown"))
            markers = next((s for s in session.streams.values() if s.modality == "markers"), None)
            if markers is not None:
                texts = marker_texts(markers.data[:]) if markers.n_samples else []
                intervals = expression_intervals(texts, markers.times)
                index.expression, index.kind = label_windows(starts + self.window_s / 2, intervals)
        return index

    def _index_video(self, index: _SessionIndex, m: str, stream) -> None:
        times = stream.times
        # Clip frames at evenly spaced times inside the window, nearest frame; a frame farther than
        # 1.5 frame periods from its target means dropped frames: the clip is masked.
        offsets = (np.arange(self.clip_frames) + 0.5) / self.clip_frames * self.window_s
        targets = index.starts[:, None] + offsets[None, :]
        right = np.clip(np.searchsorted(times, targets), 1, max(len(times) - 1, 1))
        left = right - 1
        pick = np.where(np.abs(times[left] - targets) <= np.abs(times[right] - targets), left, right)
        period = 1.0 / stream.nominal_srate if stream.nominal_srate > 0 else np.median(np.diff(times))
        index.frames[m] = pick
        index.valid[m] = (np.abs(times[pick] - targets) <= 1.5 * period).all(1) if len(times) > 1 else \
            np.zeros(len(index.starts), bool)

    def _video_stats(self, index: _SessionIndex, m: str, stream, n_frames: int = 32) -> None:
        """Mean clip frame (C, S, S) and pixel std of the deviations from it, over frames sampled across the session."""
        if stream.n_samples == 0:
            return
        picks = _spread_rows(stream.n_samples, n_frames)
        clip = self._to_clip(index, m, np.asarray(stream.data[picks]))
        mean = clip.mean(0)
        index.mean[m] = mean.numpy()
        index.std[m] = np.asarray(max(float((clip - mean).std()), 1e-3))  # a still session: no blow-up

    def _crop_box(self, session: Session, rgb_name: str, depth_name: str | None, fname: Path
                  ) -> tuple[float, float, float, float] | None:
        """The session's crop box for ``self.crop`` (frame fractions), None for the centre crop."""
        if self.crop == "foreground":
            return self._foreground_box(session, depth_name, fname)
        box_name = f"{rgb_name}-FaceBox"
        if box_name not in session.streams:
            raise ValueError(f"{fname.name} has no {box_name} stream: crop 'face' needs the face boxes of "
                             f"`emosync annotate {fname.name}`. Annotate every session (training and evaluated), "
                             "or use data.crop=foreground (a box around the head from depth).")
        return self._face_box(session.streams[box_name], session.streams[rgb_name], fname)

    def _face_box(self, box_stream, rgb_stream, fname: Path) -> tuple[float, float, float, float] | None:
        """Square box (frame fractions) around annotate's face boxes (x0, y0, x1, y1 px), plus the margin."""
        boxes = np.asarray(box_stream.data[:], dtype=np.float64)
        boxes = boxes[np.isfinite(boxes).all(1)] if boxes.ndim == 2 and boxes.shape[1] == 4 else np.zeros((0, 4))
        if not len(boxes):
            logger.warning("%s: annotate found no face in any frame: centre crop.", fname.name)
            return None
        h, w = rgb_stream.info["frame_shape"][:2]
        # Percentiles, not min/max: one spurious detection must not widen the crop for the whole session.
        x0, y0 = np.percentile(boxes[:, 0], 2), np.percentile(boxes[:, 1], 2)
        x1, y1 = np.percentile(boxes[:, 2], 98), np.percentile(boxes[:, 3], 98)
        return self._square(y0, x0, y1, x1, h, w)

    def _square(self, y0: float, x0: float, y1: float, x1: float, h: int, w: int
                ) -> tuple[float, float, float, float]:
        """The square around a box (pixels), ``crop_margin`` wider on each side, inside the frame, as fractions."""
        cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
        side = min(max(y1 - y0, x1 - x0) * (1 + 2 * self.crop_margin), h, w)
        top, left = np.clip(cy - side / 2, 0, h - side), np.clip(cx - side / 2, 0, w - side)
        return top / h, left / w, (top + side) / h, (left + side) / w

    def _foreground_box(self, session: Session, depth_name: str | None, fname: Path,
                        n_frames: int = 24) -> tuple[float, float, float, float] | None:
        """Square box (frame fractions) around the depth foreground of frames sampled over the session."""
        if depth_name is None:
            logger.warning("%s has no depth stream: foreground crop falls back to the centre crop.", fname.name)
            return None
        stream = session.streams[depth_name]
        if stream.n_samples == 0:
            return None
        picks = _spread_rows(stream.n_samples, n_frames)
        frames = np.asarray(stream.data[picks], dtype=np.float64)                    # (k, H, W) mm
        masks = [self._foreground(f) for f in frames]
        union = np.any([m for m in masks if m is not None], axis=0) if any(m is not None for m in masks) else None
        if union is None or not union.any():
            logger.warning("%s: no depth foreground found: centre crop.", fname.name)
            return None
        h, w = union.shape
        rows, cols = np.flatnonzero(union.any(1)), np.flatnonzero(union.any(0))
        return self._square(rows[0], cols[0], rows[-1] + 1, cols[-1] + 1, h, w)

    def _foreground(self, depth_mm: np.ndarray) -> np.ndarray | None:
        """Bool mask of valid pixels within ``foreground_mm`` of the nearest valid one; None without any."""
        valid = depth_mm > 0
        if not valid.any():
            return None
        return valid & (depth_mm < depth_mm[valid].min() + self.foreground_mm)

    def _index_signal(self, index: _SessionIndex, m: str, stream) -> None:
        srate = stream.nominal_srate
        if srate <= 0:
            raise ValueError(f"{index.fname.name}: {m} stream {stream.name!r} has no nominal rate; "
                             "windows need a regular signal.")
        n_times = int(round(self.window_s * srate))
        n_chans = int(stream.data.shape[1])
        for what, value, known in (("samples per window", n_times, self.n_times), ("channels", n_chans, self.n_chans)):
            if known.setdefault(m, value) != value:
                raise ValueError(f"{index.fname.name}: {m} has {value} {what}, earlier sessions {known[m]}; "
                                 "all sessions of a dataset need the same rate and channel count.")
        times = stream.times
        first = np.searchsorted(times, index.starts - self.lead_s.get(m, 0.0), "left")
        data = np.asarray(stream.data[:], dtype=np.float64)
        finite = np.isfinite(data).all(1)
        bad_cum = np.concatenate([[0], np.cumsum(~finite)])
        last = first + n_times
        ok = last <= len(times)
        last_c = np.minimum(last, len(times))
        ok &= (bad_cum[last_c] - bad_cum[first]) == 0
        # A gap (dropped samples) shows as a window spanning much more than window_s.
        span = times[np.maximum(last_c - 1, 0)] - times[np.minimum(first, len(times) - 1)] if len(times) else 0
        ok &= np.abs(span - (n_times - 1) / srate) < 2.0 / srate
        index.first[m], index.valid[m] = first, ok
        step = max(1, len(data) // self.stats_max_samples)
        sub = data[::step][finite[::step]]
        if len(sub) < 2:
            raise ValueError(f"{index.fname.name}: {m} stream has no finite samples to normalise with.")
        index.mean[m] = sub.mean(0)
        std = sub.std(0)
        index.std[m] = np.where(std > 0, std, 1.0)  # a flat channel stays 0 instead of NaN

    # -- items ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._items)

    @property
    def session_of(self) -> np.ndarray:
        """Session index of every item, shape (n_items,)."""
        return self._items[:, 0]

    @property
    def subjects(self) -> list[str]:
        """Subject id of every session (root ``subject_id``), in session order."""
        return [index.subject for index in self._index]

    def labels(self) -> dict[str, np.ndarray]:
        """Evaluation labels of every item without reading any view (cheap).

        Returns
        -------
        labels : dict
            ``expression`` (n_items,) str, ``kind`` (n_items,) str, ``subject`` (n_items,) str,
            ``session_index`` (n_items,) int, ``time_s`` (n_items,) window centres.
        """
        out: dict[str, list] = {"expression": [], "kind": [], "subject": [], "session_index": [], "time_s": []}
        for s, w in self._items:
            expression, kind = self._label(int(s), int(w))
            index = self._index[int(s)]
            out["expression"].append(expression)
            out["kind"].append(kind)
            out["subject"].append(index.subject)
            out["session_index"].append(int(s))
            out["time_s"].append(float(index.starts[w]) + self.window_s / 2)
        return {k: np.asarray(v, dtype=object if k in ("expression", "kind", "subject") else None)
                for k, v in out.items()}

    def _label(self, s: int, w: int) -> tuple[str, str]:
        index = self._index[s]
        if index.expression is None:
            return UNKNOWN, UNKNOWN
        return str(index.expression[w]), str(index.kind[w])

    def __getstate__(self) -> dict:
        # h5py handles do not pickle (spawned DataLoader workers): each process reopens its own.
        state = dict(self.__dict__)
        state["_open"] = {}
        return state

    def close(self) -> None:
        """Close the session files opened to read items (the next read opens them again).

        A reader's open handle keeps other processes, and :meth:`SessionWriter.replace_derived
        <acquisition.session.writer.SessionWriter.replace_derived>`, from writing to the file.
        """
        if os.getpid() == self._pid:
            for session in self._open.values():
                session.close()
        self._open = {}

    def _session(self, i: int) -> Session:
        if os.getpid() != self._pid:  # forked worker: never reuse the parent's handles
            self._open, self._pid = {}, os.getpid()
        if i not in self._open:
            self._open[i] = open_session(self.fnames[i])
        return self._open[i]

    def __getitem__(self, item: int) -> dict:
        s, w = (int(v) for v in self._items[item])
        index = self._index[s]
        start = float(index.starts[w])
        out: dict = {"available": {}, "session_index": s, "time_s": start + self.window_s / 2}
        for m in self.modalities:
            ok = m in index.streams and bool(index.valid[m][w])
            value = self._read(index, s, m, w) if ok else None
            if value is not None and not torch.isfinite(value).all():
                ok, value = False, None
            out[m] = value if value is not None else torch.zeros(self.shape(m))
            out["available"][m] = ok
        au = index.au[w] if index.au is not None else np.full(self.n_aus, np.nan)
        out["au"] = torch.as_tensor(au, dtype=torch.float32)
        out["expression"], out["kind"] = self._label(s, w)
        out["subject"] = index.subject
        return out

    def shape(self, m: str) -> tuple[int, ...]:
        """Shape of one view of modality ``m``."""
        if m in VIDEO:
            return (self.clip_frames, 3 if m == "rgb" else 1, self.image_size, self.image_size)
        return (self.n_chans[m], self.n_times[m])

    def _read(self, index: _SessionIndex, s: int, m: str, w: int) -> torch.Tensor:
        stream = self._session(s).streams[index.streams[m]]
        if m in SIGNALS:
            first = int(index.first[m][w])
            x = np.asarray(stream.data[first:first + self.n_times[m]], dtype=np.float64)
            x = (x - index.mean[m]) / index.std[m]
            return torch.from_numpy(x.T.astype(np.float32))
        clip = self._to_clip(index, m, np.asarray(stream.data[index.frames[m][w]]))
        if m in index.mean:  # video_norm="session": deviations from the session's mean frame
            clip = (clip - torch.from_numpy(index.mean[m])) / float(index.std[m])
        return clip

    def _to_clip(self, index: _SessionIndex, m: str, frames: np.ndarray) -> torch.Tensor:
        """Stored frames (T, H, W[, 3]) -> cropped, scaled, resized clip (T, C, S, S) float32."""
        if index.crop_box is not None:
            h, w_px = frames.shape[1:3]
            top, left, bottom, right = index.crop_box
            rows = slice(int(round(top * h)), int(round(bottom * h)))
            frames = frames[:, rows, int(round(left * w_px)):int(round(right * w_px))]
        clip = torch.from_numpy(frames.astype(np.float32))
        if m == "rgb":
            clip = clip.permute(0, 3, 1, 2) / 255.0                     # (T, 3, H, W)
        else:
            valid = clip > 0
            near = valid & (clip < clip[valid].min() + self.foreground_mm) if valid.any() else valid
            centre = clip[near].median() if near.any() else torch.tensor(0.0)
            clip = torch.where(valid, (clip - centre) / self.depth_scale_mm, torch.zeros_like(clip))[:, None]
            # the background far behind the head would otherwise dominate the scale
            clip = clip.clamp(-self.depth_clip, self.depth_clip)
        return _centre_resize(clip, self.image_size)


def _centre_resize(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Centre-crop (T, C, H, W) frames to a square, then resize to (T, C, size, size)."""
    h, w = clip.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    clip = clip[..., top:top + side, left:left + side]
    if side == size:
        return clip.contiguous()
    return F.interpolate(clip, size=(size, size), mode="bilinear", align_corners=False, antialias=side > size)


def session_subjects(sessions: Sequence[str | os.PathLike]) -> list[str]:
    """The root ``subject_id`` of each session file (``"sub-unknown"`` when absent)."""
    subjects = []
    for fname in sessions:
        with open_session(fname) as session:
            subjects.append(str(session.info.get("subject_id", "sub-unknown")))
    return subjects


def split_sessions(sessions: Sequence[str | os.PathLike], *, held_out: float | int = 0.2, seed: int = 0
                   ) -> tuple[list[Path], list[Path]]:
    """Session-level split: whole sessions go to train or held-out, never windows of one session to both.

    Parameters
    ----------
    sessions : sequence of path-like
    held_out : float or int
        Fraction (0-1, at least one session) or number of sessions to hold out.
    seed : int
        Seed of the random choice.

    Returns
    -------
    train, held_out : lists of Path, in input order.
    """
    paths = [Path(f) for f in sessions]
    n = int(held_out) if isinstance(held_out, int) else max(1, int(round(held_out * len(paths))))
    if not 0 < n < len(paths):
        raise ValueError(f"Cannot hold out {held_out} of {len(paths)} session(s): both sides need at least one.")
    test = set(np.random.default_rng(seed).choice(len(paths), n, replace=False).tolist())
    return [p for i, p in enumerate(paths) if i not in test], [p for i, p in enumerate(paths) if i in test]


def split_by_subject(sessions: Sequence[str | os.PathLike], held_out_subjects: Sequence[str]
                     ) -> tuple[list[Path], list[Path]]:
    """Subject-level split: every session of a held-out subject is held out (no identity leaks into training).

    Returns
    -------
    train, held_out : lists of Path, in input order.
    """
    paths = [Path(f) for f in sessions]
    subjects = session_subjects(paths)
    unknown = sorted(set(held_out_subjects) - set(subjects))
    if unknown:
        raise ValueError(f"No session of subject(s) {unknown}; the sessions have {sorted(set(subjects))}.")
    test = [p for p, s in zip(paths, subjects) if s in set(held_out_subjects)]
    train = [p for p, s in zip(paths, subjects) if s not in set(held_out_subjects)]
    if not train:
        raise ValueError("Holding out those subjects leaves no session to train on.")
    return train, test
