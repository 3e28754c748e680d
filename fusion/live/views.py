"""The edge model's windows, cut from live ring buffers as :class:`fusion.data.SessionWindows` cuts them.

An edge folder's ``config.json`` fixes the geometry (window length, clip frames, crop, image size,
channels, rates, EMG/EEG lead) and the preprocessing; :class:`LiveModel` reads it, checks each live
stream against it (:meth:`LiveModel.check_stream`) and turns the buffers into the model's float32
inputs (:meth:`LiveModel.views`). Offline, signals are z-scored and video frames centred with
statistics of the whole session; live, the same statistics are running ones over everything seen so
far (:class:`RunningStats`), which converge to the session's. Frames are resized with Pillow's
antialiased bilinear filter, which equals torch's ``interpolate(..., antialias=True)`` to 1e-6
(tested), so the live process needs numpy, Pillow and onnxruntime, not torch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from acquisition.utils.logs import logger

from ..edge.runtime import CONFIG_NAME, EdgeModel, read_edge_config
from .inputs import RingBuffer, StreamDescription

VIDEO = ("rgb", "depth")
SIGNALS = ("emg", "eeg")
#: Video encodings and the modality each one is.
ENCODING_MODALITY = {"RGB8": "rgb", "DEPTH16-mm": "depth"}


class RunningStats:
    """Running mean and standard deviation over every value fed, per feature (float64 sums).

    Parameters
    ----------
    shape : tuple of int
        One value's shape (``(n_chans,)`` for a signal, ``(C, S, S)`` for a frame).
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.n = 0
        self._sum = np.zeros(shape)
        self._sq = np.zeros(shape)

    def update(self, x: np.ndarray) -> None:
        """Add rows ``x`` of shape ``(n, *shape)``."""
        x = np.asarray(x, dtype=np.float64)
        self.n += len(x)
        self._sum += x.sum(0)
        self._sq += (x * x).sum(0)

    @property
    def mean(self) -> np.ndarray:
        """Mean per feature."""
        return self._sum / max(self.n, 1)

    @property
    def std(self) -> np.ndarray:
        """Standard deviation per feature (population, as numpy's default)."""
        return np.sqrt(np.maximum(self._sq / max(self.n, 1) - self.mean ** 2, 0.0))


def resize_square(frames: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop ``(T, C, H, W)`` float frames to a square and resize to ``(T, C, size, size)``.

    Pillow's bilinear filter widens its support when it shrinks (antialiasing), as torch's
    ``interpolate(mode="bilinear", antialias=True, align_corners=False)`` that training used.
    """
    t, c, h, w = frames.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    frames = frames[:, :, top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(frames, dtype=np.float32)
    out = np.empty((t, c, size, size), np.float32)
    for i in range(t):
        for k in range(c):
            image = Image.fromarray(np.ascontiguousarray(frames[i, k], dtype=np.float32), mode="F")
            out[i, k] = np.asarray(image.resize((size, size), Image.BILINEAR))
    return out


def read_live_model_config(folder: str | os.PathLike) -> dict:
    """An edge folder's ``config.json``, checked for what live inference needs.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`fusion.edge.runtime.read_edge_config` (not an edge folder, a newer format version);
        also if the geometry live inference needs is missing or uses the ``face`` crop.
    """
    config = read_edge_config(folder)
    path = Path(folder) / CONFIG_NAME
    missing = [k for k in ("window_s", "data", "inputs") if k not in config]
    if missing:
        raise ValueError(f"{path} has no {missing}: it is not a complete edge folder. Export the model again with "
                         "`emosync export-model`.")
    if config["data"].get("crop") == "face" and set(config["inputs"]) & set(VIDEO):
        raise ValueError(f"{path}: the model was trained on crop 'face' (boxes from `emosync annotate`, an offline "
                         "face tracker too slow for live frames). Train and export a model with data.crop=centre "
                         "or data.crop=foreground for `emosync live`.")
    return config


class LiveModel:
    """An edge model and the windows it takes, cut from live buffers.

    Parameters
    ----------
    folder : path-like
        An edge folder (``emosync export-model --out``).
    threads : int
        onnxruntime intra-op threads per graph.

    Attributes
    ----------
    edge : EdgeModel
        The graphs.
    modalities : list of str
        The encoders' modalities.
    window_s : float
        Window length, seconds.
    """

    def __init__(self, folder: str | os.PathLike, *, threads: int = 1) -> None:
        self.folder = Path(folder)
        self.config = read_live_model_config(self.folder)
        self.edge = EdgeModel(self.folder, threads=threads)
        self.modalities = list(self.edge.modalities)
        self.window_s = float(self.config["window_s"])
        data = self.config["data"]
        self.clip_frames, self.image_size = int(data["clip_frames"]), int(data["image_size"])
        self.crop, self.video_norm = data.get("crop", "centre"), data.get("video_norm", "none")
        self.lead_s = {m: float(v) for m, v in (data.get("lead_s") or {}).items()}
        self.stats: dict[str, RunningStats] = {}
        self._crop_box: tuple[float, float, float, float] | None = None
        self._box_done = False
        self._fed: dict[str, int] = {}

    @property
    def has_head(self) -> bool:
        """Whether the folder has a recognizer head (``classify`` works)."""
        return bool(self.edge.classes)

    def rate_hz(self, modality: str) -> float | None:
        """The nominal rate the model was calibrated on (frames or samples per second)."""
        return self.config["inputs"][modality].get("rate_hz")

    def check_stream(self, modality: str, stream: StreamDescription) -> None:
        """Check a live stream against what the model expects for ``modality``.

        Raises
        ------
        ValueError
            If the channel count, the video encoding or the nominal rate differs (the message names the
            stream and what the model expects).
        """
        where = self.folder / CONFIG_NAME
        expected_rate = self.rate_hz(modality)
        if modality in SIGNALS:
            n_chans = self.edge.input_shape(modality)[0]
            if stream.n_channels != n_chans:
                raise ValueError(f"Stream {stream} has {stream.n_channels} channels; the model's {modality} encoder "
                                 f"expects {n_chans} ({where}). Pick the stream the model was trained on, or export "
                                 "a model for this montage.")
        elif ENCODING_MODALITY.get(stream.encoding or "") != modality:
            raise ValueError(f"Stream {stream} has video encoding {stream.encoding!r}; the model's {modality} encoder "
                             f"expects {'RGB8' if modality == 'rgb' else 'DEPTH16-mm'} frames ({where}).")
        if expected_rate and not np.isclose(stream.srate_hz, expected_rate, rtol=1e-3):
            raise ValueError(f"Stream {stream} runs at {stream.srate_hz:g} Hz; the model's {modality} encoder expects "
                             f"{expected_rate:g} Hz ({where}): its windows of {self.window_s:g} s would hold another "
                             "number of samples. Resample at the source, or export a model trained at this rate.")

    # -- when a window is complete ---------------------------------------------
    def available_end(self, buffers: dict[str, tuple[RingBuffer, float]]) -> float:
        """The latest window end (this machine's LSL clock) every modality has data for; ``-inf`` if none.

        ``buffers`` maps each modality to its ring buffer and nominal rate.
        """
        ends = []
        for m in self.modalities:
            buffer, rate = buffers[m]
            last = buffer.latest_time()
            if m in VIDEO:
                # The last clip frame's target lies half a clip step before the end; the nearest frame will do.
                ends.append(last + self.window_s / (2 * self.clip_frames))
            else:
                ends.append(last + 1.0 / rate + self.lead_s.get(m, 0.0))
        return min(ends) if ends else -np.inf

    # -- views -------------------------------------------------------------------
    def views(self, buffers: dict[str, tuple[RingBuffer, float]], end_s: float
              ) -> tuple[dict[str, np.ndarray], float] | None:
        """The model's inputs for the window ending at ``end_s`` (this machine's LSL clock).

        Returns
        -------
        views : dict of str to array of float32
            Per modality, a batch of one window (``(1, T, C, S, S)`` or ``(1, n_chans, n_times)``).
        last_arrival_s : float
            ``local_clock()`` at which the window's newest sample arrived.

        None when a modality's samples are no longer (or not yet) in its buffer, or frames are missing.
        """
        start = end_s - self.window_s
        out: dict[str, np.ndarray] = {}
        arrival = -np.inf
        for m in self.modalities:
            buffer, rate = buffers[m]
            got = self._video(m, buffer, rate, buffers, start) if m in VIDEO else self._signal(m, buffer, start)
            if got is None:
                return None
            out[m], last = got
            arrival = max(arrival, last)
        return out, arrival

    def _signal(self, m: str, buffer: RingBuffer, start: float) -> tuple[np.ndarray, float] | None:
        n_chans, n_times = self.edge.input_shape(m)
        first = buffer.search(start - self.lead_s.get(m, 0.0))
        try:
            x, _, _, arrival = buffer.read(first, first + n_times)
        except IndexError:
            return None
        stats = self.stats.setdefault(m, RunningStats((n_chans,)))
        # Feed each sample once: the statistics are those of the stream so far, as offline of the session.
        fed = self._fed.get(m, first)
        if first + n_times > fed:
            fed, new, _ = buffer.read_new(fed)
            stats.update(new[: first + n_times - fed])
            self._fed[m] = first + n_times
        std = stats.std
        z = (x.astype(np.float64) - stats.mean) / np.where(std > 0, std, 1.0)
        return z.T[None].astype(np.float32), float(arrival[-1])

    def _video(self, m: str, buffer: RingBuffer, rate: float, buffers: dict[str, tuple[RingBuffer, float]],
               start: float) -> tuple[np.ndarray, float] | None:
        targets = start + (np.arange(self.clip_frames) + 0.5) / self.clip_frames * self.window_s
        pick, times = buffer.nearest(targets)
        if len(pick) == 0 or np.any(np.abs(times - targets) > 1.5 / rate):
            return None  # dropped frames (or not yet arrived): SessionWindows masks such clips too
        try:
            rows = [buffer.read(int(p), int(p) + 1) for p in pick]
        except IndexError:
            return None  # overwritten meanwhile: the loop is a whole buffer behind
        frames = np.concatenate([r[0] for r in rows])
        arrival = max(float(r[3][0]) for r in rows)
        if not self._box_done:
            self._crop_box = self._find_crop_box(buffers)
            self._box_done = True
        clip = self._to_clip(m, frames)
        if self.video_norm == "session":
            stats = self.stats.setdefault(m, RunningStats(clip.shape[1:]))
            stats.update(clip)
            std = max(float(np.sqrt(np.mean(stats.std ** 2))), 1e-3)   # pixel std of the deviations, as offline
            clip = ((clip - stats.mean) / std).astype(np.float32)
        return clip[None], arrival

    def set_frame_shapes(self, shapes: dict[str, tuple[int, ...]]) -> None:
        """The ``(height, width[, 3])`` of each video stream (from its LSL description)."""
        self._shapes = dict(shapes)

    def _find_crop_box(self, buffers: dict[str, tuple[RingBuffer, float]]) -> tuple[float, float, float, float] | None:
        """The square crop box (frame fractions), as :class:`fusion.data.SessionWindows` finds it; None: centre."""
        if self.crop != "foreground":
            return None
        if "depth" not in buffers:
            logger.warning("The model crops around the depth foreground but no depth stream is given: centre crop "
                           "(as offline for sessions without depth).")
            return None
        buffer = buffers["depth"][0]
        first, stop = buffer.span()
        picks = np.unique(np.linspace(first + (stop - first) // 4, stop - 1, 24).astype(int))
        frames = np.concatenate([buffer.read(int(p), int(p) + 1)[0] for p in picks]).reshape(
            -1, *self._shapes["depth"]).astype(np.float64)
        data = self.config["data"]
        union = None
        for f in frames:
            valid = f > 0
            if valid.any():
                mask = valid & (f < f[valid].min() + float(data["foreground_mm"]))
                union = mask if union is None else union | mask
        if union is None or not union.any():
            logger.warning("No depth foreground found in the first frames: centre crop.")
            return None
        h, w = union.shape
        rows, cols = np.flatnonzero(union.any(1)), np.flatnonzero(union.any(0))
        y0, x0, y1, x1 = rows[0], cols[0], rows[-1] + 1, cols[-1] + 1
        margin = float(data["crop_margin"])
        cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
        side = min(max(y1 - y0, x1 - x0) * (1 + 2 * margin), h, w)
        top, left = np.clip(cy - side / 2, 0, h - side), np.clip(cx - side / 2, 0, w - side)
        return top / h, left / w, (top + side) / h, (left + side) / w

    def _to_clip(self, m: str, frames: np.ndarray) -> np.ndarray:
        """Buffer rows (T, n_values) -> cropped, scaled, resized clip (T, C, S, S) float32."""
        shape = self._shapes[m]
        frames = frames.view(np.uint8 if m == "rgb" else np.uint16).reshape(len(frames), *shape)
        if self._crop_box is not None:
            h, w = shape[:2]
            top, left, bottom, right = self._crop_box
            frames = frames[:, int(round(top * h)):int(round(bottom * h)), int(round(left * w)):int(round(right * w))]
        if m == "rgb":
            clip = frames.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        else:
            data = self.config["data"]
            x = frames.astype(np.float32)
            valid = x > 0
            near = valid & (x < x[valid].min() + float(data["foreground_mm"])) if valid.any() else valid
            # torch's median (training) is the lower middle value, not numpy's mean of the two
            centre = np.float32(np.sort(x[near])[(near.sum() - 1) // 2]) if near.any() else np.float32(0.0)
            x = np.where(valid, (x - centre) / np.float32(data["depth_scale_mm"]), 0.0)
            clip = np.clip(x, -float(data["depth_clip"]), float(data["depth_clip"]))[:, None].astype(np.float32)
        return resize_square(clip, self.image_size)
