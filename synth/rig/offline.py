"""Write simulated sessions straight from the rig's deterministic generators (no real-time recording).

Sample ``k`` of a stream with rate ``r`` is stamped ``k / r`` seconds, exactly as the rig
stamps it relative to its ``t0``; clock offsets are zero. Used by the fusion tests and
benchmarks, where recording 30 s through LSL would cost 30 s of wall time; the samples are
those a live recording of the same seed would hold (tests/synth/test_rig.py proves that).
The ``Markers`` stream holds the expression markers the live rig sends (same strings, same
times), and the root ``subject_id`` names the rendered face (``sub-id<identity_seed>``), so
subject-level splits hold out different faces, not just different timelines.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from acquisition import SessionWriter, StreamSpec, logger


def subject_id(identity_seed: int) -> str:
    """The root ``subject_id`` of a simulated session: one subject per rendered face."""
    return f"sub-id{int(identity_seed):03d}"


def write_rig_session(fname: str | os.PathLike, *, duration_s: float = 30.0, seed: int = 0,
                      profile: str = "light", overrides: Sequence[str] = (),
                      modalities: Sequence[str] = ("rgb", "depth", "emg", "eeg", "au", "markers")) -> Path:
    """Write ``duration_s`` seconds of the simulated rig into a session file.

    Parameters
    ----------
    fname : path-like
        The session file to create (must not exist).
    duration_s : float
        Length in seconds.
    seed : int
        Rig seed: the AU timeline, the idle behaviour and every signal.
    profile : str
        Rig config name under ``configs/rig/`` (``"light"``: 160x120 video).
    overrides : sequence of str
        Rig config overrides, e.g. ``["timeline.expressions_per_minute=60"]``.
    modalities : sequence of str
        Streams to write, among ``rgb``, ``depth``, ``emg``, ``eeg``, ``au``, ``markers``.

    Returns
    -------
    fname : Path
    """
    from acquisition.annotate.action_units import AU_LABELS

    from synth.rig.config import load_rig_config
    from synth.rig.simulator import SimulatedRig

    config = load_rig_config(profile, list(overrides))
    rig = SimulatedRig(config, seed=seed, duration_s=duration_s + 5.0, profile=profile)
    fname = Path(fname)
    with SessionWriter(fname, subject_id=subject_id(config.identity_seed), notes="fusion.simulated",
                       metadata={"synthetic": True}) as w:
        video = None
        if "rgb" in modalities or "depth" in modalities:
            n = int(duration_s * config.rgb.fps)
            video = rig.make_generator("video").next_samples(n)
        for key in modalities:
            if key in ("rgb", "depth"):
                stream_config = getattr(config, key)
                rate = float(stream_config.fps)
                frames = video[0] if key == "rgb" else video[1]
                shape = frames.shape[1:]
                fmt = "int8" if key == "rgb" else "int16"
                spec = StreamSpec(stream_config.name, "VideoRaw", int(np.prod(shape)), fmt, rate,
                                  rig.source_id(key), frame_shape=tuple(shape),
                                  encoding="RGB8" if key == "rgb" else "DEPTH16-mm", can_drop_samples=True)
                data = frames
            elif key in ("emg", "eeg"):
                stream_config = getattr(config, key)
                rate = float(stream_config.srate_hz)
                data = rig.regenerate(key, int(duration_s * rate))
                labels = ([c.label for c in stream_config.channels] if key == "emg" else list(stream_config.channels))
                spec = StreamSpec(stream_config.name, key.upper(), data.shape[1], "float32", rate, rig.source_id(key),
                                  channel_labels=labels, channel_units=["V"] * len(labels),
                                  channel_types=[key] * len(labels))
            elif key == "au":
                rate = float(config.au.srate_hz)
                data = rig.regenerate("au", int(duration_s * rate))
                labels = list(AU_LABELS)
                spec = StreamSpec(config.au.name, "ActionUnits", data.shape[1], "float32", rate, rig.source_id("au"),
                                  channel_labels=labels)
            elif key == "markers":
                # The live rig pushes each marker at its time on the timeline (SimulatedRig._run_markers).
                events = [(t, text) for t, text in rig.timeline.markers() if t < duration_s]
                spec = StreamSpec(config.markers.name, "Markers", 1, "string", 0.0, rig.source_id("markers"),
                                  channel_labels=["expression"], can_drop_samples=False)
                writer = w.add_stream(spec)
                if events:
                    writer.append([[text] for _, text in events], [t for t, _ in events])
                continue
            else:
                raise ValueError(f"Unknown modality {key!r}; use rgb, depth, emg, eeg, au or markers.")
            w.add_stream(spec).append(data, np.arange(len(data)) / rate)
    logger.info("Wrote %.1f s of the simulated %s rig (seed %d) to %s", duration_s, profile, seed, fname)
    return fname
