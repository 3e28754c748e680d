# ruff: noqa: T201  (benchmark scripts report by printing)
"""Benchmark ``emosync live``: window-to-result latency while ``emosync record`` records the default rig.

One run, on this machine, three processes beside this driver:

1. the simulated rig (``emosync simulate --profile default``: VGA RGB + depth at 30 fps, 8-channel EMG
   at 2 kHz, 32-channel EEG, AUs, markers) under a unique stream-name prefix;
2. live inference (what ``emosync live`` runs: :class:`fusion.live.runner.LiveRunner`) on its RGB and
   EMG, publishing ``<prefix>Live-Expressions``, ``-AU`` and ``-Latency``;
3. ``emosync record`` recording every stream of the prefix, the live ones included.

Then, from the recorded session alone: the latency samples (ms from the arrival of a window's newest
sample to the publication of its result) p50 / p99 / max, the windows the live process skipped to keep
up, the expressions it published, and per rig stream the samples the recorder lost (sample ``k`` of a
rig stream is stamped ``t0 + k / rate``, ``t0`` is in its info XML, so a missing ``k`` is a lost sample).

The model is ``--model`` (an edge folder for RGB + 8-channel EMG at 2 kHz), or a tiny one made first
from 6 s of the default rig (a 2-step pretraining, exported with ``emosync export-model``'s code).

Usage::

    python benchmarks/live_latency.py --duration 60
    python benchmarks/live_latency.py --duration 60 --model models/edge1 --set threads=2
    python benchmarks/live_latency.py --duration 10 --profile light      # a quick check of the script
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
SMALL = ["data.clip_frames=4", "data.image_size=32", "data.window_s=0.5", "data.stride_s=0.25",
         "optim.batch_size=4", "optim.warmup_steps=2", "model.hidden_dim=32", "model.embed_dim=16",
         "model.encoders.rgb.kwargs.width=8", "data.modalities=[rgb,emg]", "optim.steps=2", "data.cache=false",
         "data.crop=centre"]


def build_model(workdir: Path) -> Path:
    """A tiny RGB + EMG recognizer on the default rig's geometry, exported as an edge folder."""
    import torch

    from fusion.config import load_pretrain_config
    from fusion.edge.build import export_model
    from fusion.evaluate import load_run
    from fusion.recognition.head import RecognitionModel
    from fusion.train import pretrain
    from synth.rig.offline import write_rig_session

    session = write_rig_session(workdir / "calib.h5", duration_s=6, seed=1, profile="default",
                                modalities=("rgb", "emg", "markers"))
    pretrain([session], load_pretrain_config("tiny", SMALL), workdir / "run", progress=False)
    model, config = load_run(workdir / "run")
    torch.manual_seed(0)
    rec = RecognitionModel(model.eval(), ["rgb", "emg"], ["negative", "positive", "surprise"], "megc3",
                           config.data.model_dump(), anchor="apex")
    rec.eval().save_pretrained(workdir / "rec")
    export_model(workdir / "rec", workdir / "edge", calibrate=[session], quantize="none", threads=(1,), repeats=3)
    return workdir / "edge"


def worker_live(argv: list[str]) -> None:
    """Run live inference for the rig with prefix ``argv[1]``; write the summary JSON to ``argv[3]``."""
    from fusion.live.config import load_live_config
    from fusion.live.runner import LiveRunner

    model, prefix, out, duration, *overrides = argv
    runner = LiveRunner(model, video=f"name='{prefix}RGB'", emg=f"name='{prefix}EMG'", name=f"{prefix}Live",
                        config=load_live_config("default", overrides))
    Path(out + ".ready").write_text("1")
    summary = runner.run(float(duration))
    Path(out).write_text(json.dumps(summary.to_dict()))


def lost_samples(ts: np.ndarray, xml: str, rate: float) -> dict[str, int]:
    """Lost and duplicated samples of a rig stream, from its stamps ``t0 + k / rate``."""
    t0 = float(ET.fromstring(xml).find("desc/emosync_simulation/t0").text)  # type: ignore[union-attr]
    k = np.unique(np.rint((ts - t0) * rate).astype(np.int64))
    return {"n": int(ts.size), "lost": int(k[-1] - k[0] + 1 - k.size) if k.size else 0,
            "duplicates": int(ts.size - k.size)}


def analyse(fname: Path, prefix: str, live: dict) -> dict:
    from acquisition import open_session

    out: dict = {"streams": {}, "live": {k: live.get(k) for k in ("windows", "skipped", "incomplete", "max_behind_s",
                                                                  "latency_ms", "spotter_source")}}
    with open_session(fname) as session:
        for name, stream in session.streams.items():
            short = name[len(prefix):]
            ts = np.asarray(stream.timestamps, dtype=np.float64)
            if short.startswith("Live-"):
                if short == "Live-Latency":
                    lat = np.asarray(stream.data[:], dtype=np.float64).ravel()
                    out["latency_recorded_ms"] = {"n": int(lat.size), "p50": float(np.percentile(lat, 50)),
                                                  "p99": float(np.percentile(lat, 99)), "max": float(lat.max())}
                else:
                    out["streams"][short] = {"n": int(ts.size)}
            elif stream.nominal_srate > 0:
                out["streams"][short] = lost_samples(ts, stream.info["info_xml"], stream.nominal_srate)
    out["expressions"] = len(live.get("expressions", []))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="Seconds recorded.")
    parser.add_argument("--profile", default="default", help="Rig profile (light: a quick check of the script).")
    parser.add_argument("--model", type=Path, help="An edge folder (default: build a tiny one first).")
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/emosync-bench/live"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="configs/live override.")
    args = parser.parse_args()
    work = args.out_dir / uuid.uuid4().hex[:8]
    work.mkdir(parents=True)
    model = args.model or build_model(work)
    prefix = f"bench{uuid.uuid4().hex[:6]}_"
    python = sys.executable
    procs = []
    try:
        procs.append(subprocess.Popen([python, "-m", "emosync", "simulate", "--profile", args.profile, "--name-prefix",
                                       prefix, "--duration", str(args.duration + 30)], stdout=subprocess.DEVNULL))
        summary = work / "live.json"
        procs.append(subprocess.Popen([python, str(HERE), "--worker-live", str(model), prefix, str(summary),
                                       str(args.duration + 12), *args.overrides]))
        deadline = time.monotonic() + 60
        while not Path(str(summary) + ".ready").exists():   # the live outlets exist: the recorder will find them
            if time.monotonic() > deadline or procs[-1].poll() is not None:
                raise RuntimeError("live inference did not start; see its output above")
            time.sleep(0.2)
        time.sleep(4.0)   # past the live warm-up
        fname = work / "session.h5"
        subprocess.run([python, "-m", "emosync", "record", str(fname), "--stream", f"starts-with(name,'{prefix}')",
                        "--duration", str(args.duration), "--json"], check=True, stdout=subprocess.DEVNULL)
        procs[1].wait(timeout=args.duration + 60)
        result = analyse(fname, prefix, json.loads(summary.read_text()))
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=10)
    result["duration_s"], result["profile"] = args.duration, args.profile
    (work / "result.json").write_text(json.dumps(result, indent=2))
    lat = {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "n": 0,
           **result.get("latency_recorded_ms", {})}
    lost = ", ".join(f"{k} {v['lost']}" for k, v in result["streams"].items() if "lost" in v)
    print("| duration | windows | skipped | latency p50 (ms) | p99 (ms) | max (ms) | expressions | lost samples |\n"
          "|---|---|---|---|---|---|---|---|\n"
          f"| {args.duration:g} s | {lat['n']} | {result['live']['skipped']} | {lat['p50']:.1f} | {lat['p99']:.1f} | "
          f"{lat['max']:.1f} | {result['expressions']} | {lost} |")
    print(f"Details: {work / 'result.json'}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker-live":
        worker_live(sys.argv[2:])
    else:
        main()
