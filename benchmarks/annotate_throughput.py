"""Throughput of ``emosync annotate`` (MediaPipe Face Landmarker + derived streams) at 640x480.

Renders a short clip with the simulated rig's face renderer (a synthetic face that moves
its mouth and brows), writes it as an RGB8 session, and times :func:`annotate_session`
end to end (decode, landmarker, AU mapping, crops, HDF5 writes), then the landmarker alone.
Prints a markdown table for benchmarks/RESULTS.md.

Run: python benchmarks/annotate_throughput.py [--frames 300] [--model face_landmarker.task]
(CPU count: restrict with ``taskset -c 0,1`` to measure on 2 cores.) The model is the one bundled with
emosync unless --model or $EMOSYNC_FACE_LANDMARKER names another.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from acquisition import SessionWriter, StreamSpec  # noqa: E402
from acquisition.annotate.face_model import find_face_model  # noqa: E402
from acquisition.annotate.face_tracking import annotate_session, track_frames  # noqa: E402
from acquisition.annotate.action_units import AU_IDS, AU_INDEX  # noqa: E402
from synth.rig.face import FaceRenderer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    model = find_face_model(args.model)
    renderer = FaceRenderer(640, 480, identity_seed=2)
    t = np.arange(args.frames) / 30
    frames = np.empty((args.frames, 480, 640, 3), np.uint8)
    for i, ti in enumerate(t):
        aus = np.zeros(len(AU_IDS))
        aus[AU_INDEX[12]] = 2.5 + 2.5 * np.sin(ti)
        aus[AU_INDEX[1]] = 2.5 + 2.5 * np.cos(ti)
        frames[i] = renderer.render(aus, yaw_deg=10 * np.sin(0.5 * ti))[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for compression in ("none", "jpeg"):
            fname = Path(tmp) / f"bench_{compression}.h5"
            with SessionWriter(fname) as writer:
                video = writer.add_stream(StreamSpec("RGB", "VideoRaw", 640 * 480 * 3, "int8", 30.0, "cam",
                                                     frame_shape=(480, 640, 3), encoding="RGB8",
                                                     compression=compression, can_drop_samples=True))
                video.append(frames, t)
            started = time.perf_counter()
            summary = annotate_session(fname, model=model, verbose="WARNING")
            wall = time.perf_counter() - started
            rows.append((f"annotate, video stored `{compression}`", args.frames / wall, summary["detection_rate"]))
    started = time.perf_counter()
    found = sum(bool(f) for f in track_frames(iter(frames), t, model=model, max_faces=1))
    wall = time.perf_counter() - started
    rows.append(("landmarker only (num_faces=1)", args.frames / wall, found / args.frames))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"\n`python benchmarks/annotate_throughput.py --frames {args.frames}` on {platform.processor() or 'CPU'}, "
          f"{cores} cores, 640x480, model {model.name}\n")
    print("| path | frames/s | face found |")
    print("|---|---:|---:|")
    for name, fps, rate in rows:
        print(f"| {name} | {fps:.1f} | {100 * rate:.0f} % |")


if __name__ == "__main__":
    main()
