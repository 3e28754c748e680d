"""The inference loop of ``emosync live``: windows every hop, the online spotter, labels, outlets.

:class:`LiveRunner` resolves the named streams (:mod:`.inputs`), checks them against the edge model
(:mod:`.views`), then loops on one thread while each stream's own thread fills its ring buffer:

1. New samples of the spotting source (EMG, else video) go through the causal front end into the
   :class:`~.spotter.OnlineSpotter` and, with EMG, the :class:`~.emg_au.OnlineEMGCoder`.
2. Windows end on a grid of ``hop_s`` on this machine's LSL clock. Once every stream has the samples of
   the next window, it is cut, run through the encoders (and the recognizer head) and its latency is
   published; the AU estimate at the window's end is published too. A loop more than ``max_behind_s``
   behind the newest complete window skips to it (windows are never queued), counts the skipped
   windows and logs by how much it fell behind.
3. A spotted expression is labelled with the recognizer's class on the window centred nearest its apex
   (the clips it was trained on are apex-centred), else with its dominant EMG AUs at the apex, and
   published as onset/apex/offset markers stamped with their times in the signal.

The first ``warmup_s`` of every stream only feeds the running statistics (normalisation, baselines).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pylsl

from acquisition.annotate.spotting import SpottedInterval
from acquisition.utils.logs import logger

from .config import LiveConfig, load_live_config
from .emg_au import OnlineEMGCoder
from .inputs import StreamInput, resolve
from .outlets import LiveOutlets
from .spotter import EMGEnvelope, LiveExpression, OnlineSpotter, VideoMotion, emg_spotting_channels
from .views import ENCODING_MODALITY, VIDEO, LiveModel

#: Dominant AUs of a label: at least this fraction of the largest at the apex (as ``configs/spot``) ...
AU_FRACTION = 0.4
#: ... and at least this intensity (FACS 0-5).
MIN_AU_INTENSITY = 0.3


@dataclass
class LiveSummary:
    """What a live run did.

    Attributes
    ----------
    duration_s : float
        Wall time of the loop, seconds.
    windows : int
        Windows run through the model.
    skipped : int
        Windows skipped to catch up with real time.
    incomplete : int
        Windows not run because frames or samples were missing.
    max_behind_s : float
        Largest lag of the loop behind the newest complete window, seconds.
    latency_ms : dict of str to float
        ``p50``, ``p99`` and ``max`` of the published latencies (NaN without windows).
    expressions : list of dict
        The published expressions (times, label, kind, peak).
    streams : dict of str to dict
        Per modality: the stream's name and the samples received.
    spotter_source : str
        ``"emg"`` or ``"video"``.
    """

    duration_s: float
    windows: int
    skipped: int
    incomplete: int
    max_behind_s: float
    latency_ms: dict[str, float]
    expressions: list[dict[str, Any]] = field(default_factory=list)
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    spotter_source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return asdict(self)


class LiveRunner:
    """Edge inference on live LSL streams.

    Parameters
    ----------
    model : path-like
        An edge folder (``emosync export-model --out``).
    video, emg, eeg : str | None
        LSL queries of the streams (e.g. ``"type='VideoRaw'"``); a video query may match an RGB and a
        depth stream (told apart by their encoding).
    name : str
        Prefix of the published streams.
    config : LiveConfig | None
        Settings (default ``configs/live/default.yaml``).

    Raises
    ------
    FileNotFoundError, ValueError
        From the model folder (names its ``config.json``), or a stream that does not fit the model
        (names the stream and what the model expects), or a modality the model needs without a query.
    StreamNotFound
        If a query matched no stream within ``config.resolve_timeout_s``.
    """

    def __init__(self, model: str | os.PathLike, *, video: str | None = None, emg: str | None = None,
                 eeg: str | None = None, name: str = "Live", config: LiveConfig | None = None) -> None:
        self.config = config or load_live_config()
        self.model = LiveModel(model, threads=self.config.threads)
        self.name = name
        queries = {"video": video, "emg": emg, "eeg": eeg}
        needed = {"video" if m in VIDEO else m for m in self.model.modalities}
        missing = sorted(q for q in needed if not queries[q])
        if missing:
            example = "VideoRaw" if missing[0] == "video" else missing[0].upper()
            raise ValueError(f"The model {self.model.folder} has encoders for {self.model.modalities}: pass a stream "
                             f"query for {missing} (e.g. --{missing[0]} \"type='{example}'\").")
        need_s = self.model.window_s + self.config.max_behind_s + max(self.model.lead_s.values(), default=0.0) + 1.0
        if self.config.buffer_s < need_s:
            c = self.config
            raise ValueError(f"buffer_s is {c.buffer_s:g} s; windows of {self.model.window_s:g} s that may lag "
                             f"{c.max_behind_s:g} s need at least {need_s:g} s: --set buffer_s={need_s:.1f}")
        source = self.config.spotter.source
        if source == "auto":
            source = "emg" if emg else "video"
        if not queries[source]:
            raise ValueError(f"spotter.source is {source!r} but no --{source} stream was given.")
        self.spotter_source = source
        self.inputs: dict[str, StreamInput] = {}
        try:
            self._open(queries)
        except BaseException:
            self.close()
            raise
        self._setup()

    # -- set-up ------------------------------------------------------------------
    def _open(self, queries: dict[str, str | None]) -> None:
        c = self.config
        for what, query in queries.items():
            if not query:
                continue
            for info in resolve(query, timeout_s=c.resolve_timeout_s, what=f"--{what}"):
                if what == "video":
                    stream = StreamInput(info, buffer_s=c.buffer_s)
                    modality = ENCODING_MODALITY.get(stream.description.encoding or "")
                    if modality is None:
                        stream.inlet.close_stream()
                        raise ValueError(f"Stream {stream.description} matched --video {query!r} but is not a video "
                                         f"stream (no RGB8 or DEPTH16-mm encoding in its description).")
                    if modality in self.inputs or (modality not in self.model.modalities and self.spotter_source !=
                                                   "video"):
                        stream.inlet.close_stream()
                        continue
                else:
                    if what in self.inputs:
                        logger.warning("--%s %r matched several streams; using %s", what, query,
                                       self.inputs[what].description)
                        break
                    stream, modality = StreamInput(info, buffer_s=c.buffer_s), what
                self.inputs[modality] = stream
                if modality in self.model.modalities:
                    self.model.check_stream(modality, stream.description)
        missing = [m for m in self.model.modalities if m not in self.inputs]
        if missing:
            found = {m: str(s.description) for m, s in self.inputs.items()}
            raise ValueError(f"The model needs {missing} but the queries found {found or 'nothing'}: pass a query "
                             "that matches that stream.")

    def _setup(self) -> None:
        c = self.config
        self.model.set_frame_shapes({m: s.description.frame_shape for m, s in self.inputs.items() if m in VIDEO})
        self.coder: OnlineEMGCoder | None = None
        src = self.inputs["emg" if self.spotter_source == "emg" else self._video_key()]
        d = src.description
        if self.spotter_source == "emg":
            from acquisition.annotate.emg_coding import load_emg_coding_config

            emg_code = load_emg_coding_config(c.au.emg_code)
            labels = d.channel_labels or [f"ch{i}" for i in range(d.n_channels)]
            self._spot_channels = emg_spotting_channels(labels, c.spotter.exclude_muscles, emg_code.muscles)
            self.front = EMGEnvelope(d.srate_hz, len(self._spot_channels), band_hz=c.spotter.band_hz,
                                     notch_hz=c.spotter.notch_hz, window_s=c.spotter.envelope_window_s,
                                     out_rate_hz=c.spotter.rate_hz)
            self.spotter = OnlineSpotter(len(self._spot_channels), c.spotter.rate_hz, c.spotter,
                                         delay_s=self.front.delay_s)
            if c.au.enabled:
                try:
                    self.coder = OnlineEMGCoder(labels, d.srate_hz, emg_code, baseline_window_s=c.au.baseline_window_s,
                                                range_history_s=c.au.range_history_s)
                except ValueError as err:
                    logger.warning("No AU estimates: %s", err)
        else:
            self.front = VideoMotion(d.frame_shape, c.spotter.video_step_px)
            self.spotter = OnlineSpotter(1, d.srate_hz, c.spotter)
        self._spot_input = src
        self.outlets = LiveOutlets(self.name, au_labels=self.coder.au_labels if self.coder else (), hop_s=c.hop_s)
        logger.info("Live: model %s on %s; spotting on %s; publishing %s", self.model.folder.name,
                    ", ".join(f"{m}={s.description}" for m, s in self.inputs.items()), self.spotter_source,
                    ", ".join(self.outlets.names.values()))

    def _video_key(self) -> str:
        return "rgb" if "rgb" in self.inputs else "depth"

    # -- loop ----------------------------------------------------------------------
    def run(self, duration_s: float | None = None, *, stop_event: threading.Event | None = None) -> LiveSummary:
        """Pull, spot, infer and publish until ``duration_s`` has passed or ``stop_event`` is set."""
        stop_event = stop_event or threading.Event()
        c = self.config
        for stream in self.inputs.values():
            stream.start()
        buffers = {m: (s.buffer, s.description.srate_hz or 1.0) for m, s in self.inputs.items()}
        started = time.monotonic()
        deadline = None if duration_s is None else started + duration_s
        fed = 0
        # Long enough to find the apex of the longest expression when it is decided.
        history_s = c.spotter.max_duration_s + c.spotter.merge_gap_s + 2 * self.model.window_s + 1.0
        au_history: deque[tuple[float, np.ndarray]] = deque(maxlen=int(history_s * 200))
        results: deque[tuple[float, np.ndarray]] = deque(maxlen=int(history_s / c.hop_s) + 1)
        pending: list[LiveExpression] = []
        latencies: list[float] = []
        published: list[dict[str, Any]] = []
        windows = skipped = incomplete = 0
        max_behind = 0.0
        next_end = None
        warm_from = None
        next_log = started + c.log_every_s
        last_behind_log = 0.0
        try:
            while not stop_event.is_set() and (deadline is None or time.monotonic() < deadline):
                # 1. the spotting source's new samples
                start, data, times = self._spot_input.buffer.read_new(fed)
                if start > fed:
                    logger.warning("The spotter fell %d samples behind its buffer; they were skipped.", start - fed)
                fed = start + len(times)
                if len(times):
                    if self.spotter_source == "emg":
                        env, t = self.front.process(data[:, self._spot_channels], times)
                        pending += self.spotter.update(env, t)
                        if self.coder is not None:
                            values, t_au = self.coder.process(data, times)
                            au_history.extend(zip(t_au, values))
                    else:
                        motion, t = self.front.process(data, times)
                        pending += self.spotter.update(motion, t)
                # 2. windows on the hop grid
                avail = self.model.available_end(buffers)
                if np.isfinite(avail):
                    if warm_from is None:
                        warm_from = max(s.buffer.oldest_time() for s in self.inputs.values()) + c.warmup_s
                        next_end = np.ceil((warm_from - c.warmup_s + self.model.window_s) / c.hop_s) * c.hop_s
                    behind = avail - next_end
                    if behind > c.max_behind_s:
                        n_skip = int(np.floor(behind / c.hop_s))
                        skipped += n_skip
                        next_end += n_skip * c.hop_s
                        max_behind = max(max_behind, behind)
                        if time.monotonic() - last_behind_log > 5.0:
                            logger.warning("Live inference is %.0f ms behind the streams: skipped %d window(s) "
                                           "(%d so far)", behind * 1000, n_skip, skipped)
                            last_behind_log = time.monotonic()
                    if avail >= next_end:
                        got = self.model.views(buffers, next_end)
                        if got is None:
                            incomplete += next_end >= warm_from
                        elif next_end >= warm_from:
                            views, last_arrival = got
                            out = (self.model.edge.classify(views) if self.model.has_head else
                                   self.model.edge.embed(views)[self.model.modalities[0]])[0]
                            results.append((next_end - self.model.window_s / 2, out))
                            if self.coder is not None and au_history:
                                t_au, values = au_history[-1]
                                self.outlets.push_au(values, t_au)
                            latency_ms = (pylsl.local_clock() - last_arrival) * 1000
                            self.outlets.push_latency(latency_ms, next_end)
                            latencies.append(latency_ms)
                            windows += 1
                        next_end += c.hop_s
                        continue  # the next window may be complete already
                # 3. label and publish the expressions whose apex window has run
                processed = next_end - c.hop_s if next_end is not None else -np.inf
                for expression in list(pending):
                    if expression.apex_s + self.model.window_s / 2 <= processed or not self.model.has_head or \
                            expression.decided_s + 2 * self.model.window_s < processed:
                        pending.remove(expression)
                        published.append(self._publish(expression, results, au_history))
                if time.monotonic() >= next_log:
                    next_log += c.log_every_s
                    logger.info("Live: %d windows (%d skipped), latency p50 %.1f ms, %d expressions", windows,
                                skipped, np.median(latencies) if latencies else np.nan, len(published))
                stop_event.wait(0.002)
        finally:
            for stream in self.inputs.values():
                stream.stop()
        # Decided expressions still waiting for their apex window: published with what there is.
        published += [self._publish(e, results, au_history) for e in pending]
        lat = np.asarray(latencies)
        pct = {k: float(np.percentile(lat, q)) if lat.size else float("nan") for k, q in (("p50", 50), ("p99", 99))}
        pct["max"] = float(lat.max()) if lat.size else float("nan")
        return LiveSummary(time.monotonic() - started, windows, skipped, incomplete, max_behind, pct, published,
                           {m: {"name": s.description.name, "samples": s.n_received} for m, s in self.inputs.items()},
                           self.spotter_source)

    def _publish(self, expression: LiveExpression, results: deque, au_history: deque) -> dict[str, Any]:
        e = expression
        emotion, aus = None, []
        if self.model.has_head and results:
            centres = np.array([r[0] for r in results])
            logits = results[int(np.argmin(np.abs(centres - e.apex_s)))][1]
            emotion = self.model.edge.classes[int(np.argmax(logits))]
        elif au_history and self.coder is not None:
            times = np.array([t for t, _ in au_history])
            values = au_history[int(np.argmin(np.abs(times - e.apex_s)))][1]
            if values.max() >= MIN_AU_INTENSITY:
                keep = (values >= AU_FRACTION * values.max()) & (values >= MIN_AU_INTENSITY)
                aus = [au for au, k in zip(self.coder.aus, keep) if k]
        interval = SpottedInterval(0, 0, 0, e.onset_s, e.apex_s, e.offset_s, e.kind, aus, emotion, e.peak)
        self.outlets.push_markers(interval.markers())
        logger.info("Expression %s: %.2f-%.2f s (apex %.2f, peak %.1f), published %.0f ms after its offset",
                    interval.label, e.onset_s, e.offset_s, e.apex_s, e.peak,
                    (pylsl.local_clock() - e.offset_s) * 1000)
        return {"label": interval.label, "kind": e.kind, "onset_s": e.onset_s, "apex_s": e.apex_s,
                "offset_s": e.offset_s, "peak": e.peak, "forced": e.forced}

    def close(self) -> None:
        """Close the inlets (the outlets close with the runner)."""
        for stream in self.inputs.values():
            try:
                stream.inlet.close_stream()
            except Exception:  # noqa: BLE001 -- closing is best effort
                pass
