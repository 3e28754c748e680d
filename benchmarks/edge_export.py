"""Benchmark edge export: model sizes, CPU latency per window (fp32 and int8, 1 and 2 threads), accuracy change.

Issue 16 asks for "Edge: model sizes and CPU latency per window for fp32 and int8 (onnxruntime, 1
and 2 threads), and the accuracy change from quantization. Goal: int8 changes UF1 by <= 0.01 and
R@1 by <= 0.02." This script

1. writes ``--sessions`` light-rig sessions of ``--seconds`` each (``synth.rig.offline``; subject i
   of seed k is rig seed ``100 k + i``), holds out the last ``--heldout`` of them and pretrains the ``--config``
   encoders on the others for ``--steps`` steps;
2. trains a recognizer probe (``configs/recognize/tiny``) on the same sessions' expressions, unless
   ``--no-recognizer``;
3. exports both with :func:`fusion.edge.build.export_model` (``--quantize int8``), calibrated on the
   held-out sessions, every variant timed ``--repeats`` times per thread count (1 and 2);
4. prints one row per encoder and variant (size, median and range of the latency, max abs difference
   from PyTorch) and the accuracy change of every variant against ONNX fp32: retrieval R@1 (largest
   change over the ordered pairs) and, for the recognizer, UF1 on the held-out sessions' expressions. With
   one held-out session that is 10-13 clips, so one changed label moves UF1 by ~0.08; ``--heldout 4`` scores
   ~50 clips.

Usage::

    python benchmarks/edge_export.py                        # 3 x 40 s sessions, tiny config
    python benchmarks/edge_export.py --seconds 20 --steps 20   # quick check
    python benchmarks/edge_export.py --sessions 6 --heldout 4 --seeds 0,1,2 --json-out result.json   # RESULTS.md

Seed ``k`` draws other subjects (rig seeds ``100 k + i``) and seeds pretraining and the recognizer
with ``k``; the last lines summarize the accuracy change of the deployed mix as mean and spread over seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=3, help="Sessions (subjects), held-out ones included.")
    parser.add_argument("--heldout", type=int, default=1,
                        help="The last this many sessions calibrate and score the export; the others train.")
    parser.add_argument("--seconds", type=float, default=40.0, help="Seconds per session.")
    parser.add_argument("--config", default="tiny", help="configs/pretrain name.")
    parser.add_argument("--steps", type=int, default=60, help="Pretraining steps.")
    parser.add_argument("--repeats", type=int, default=5, help="Timed runs per variant and thread count.")
    parser.add_argument("--no-recognizer", action="store_true", help="Export the encoders only.")
    parser.add_argument("--seeds", default="0", help="Comma-separated seeds; one whole run per seed.")
    parser.add_argument("--json-out", type=Path, help="Write the export cards' figures here.")
    args = parser.parse_args()
    if not 1 <= args.heldout < args.sessions:
        parser.error(f"--heldout must leave at least one of the {args.sessions} sessions to train on.")

    from fusion.config import load_pretrain_config
    from fusion.edge.build import export_model
    from fusion.recognition.config import load_recognize_config
    from fusion.recognition.train import train_recognizer
    from fusion.train import pretrain
    from synth.rig.offline import write_rig_session

    rich = ["timeline.expressions_per_minute=60", "idle.enabled=true"]
    results = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        print(f"\n# seed {seed}")
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            subjects = [100 * seed + i for i in range(args.sessions)]
            sessions = [write_rig_session(tmp / f"s{i}.h5", duration_s=args.seconds, seed=i,
                                          overrides=[*rich, f"identity_seed={i}"]) for i in subjects]
            train, held_out = sessions[:-args.heldout], sessions[-args.heldout:]
            pretrain(train, load_pretrain_config(args.config, [f"optim.steps={args.steps}", "data.num_workers=0",
                                                               f"seed={seed}"]), tmp / "run", progress=False)
            models = {"encoders": tmp / "run"}
            if not args.no_recognizer:
                config = load_recognize_config("tiny", ["threads=2", f"seed={seed}"])
                train_recognizer(train, config, tmp / "rec", encoders=tmp / "run", progress=False)
                models["recognizer"] = tmp / "rec"
            for name, model in models.items():
                card = export_model(model, tmp / f"edge-{name}", calibrate=held_out, quantize="int8",
                                    threads=(1, 2), repeats=args.repeats)
                results[f"seed{seed}/{name}"] = card
                _report(name, card)
    _summarize(results)
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))


def _report(name: str, card: dict) -> None:
    print(f"\n## {name}: {card['accuracy']['n_windows']} calibration windows of {card['window_s']} s")
    print("| modality | variant | deployed | size (kB) | max abs diff | ms/window 1 thread | ms/window 2 threads |")
    print("|---|---|---|---|---|---|---|")
    for m, entry in card["inputs"].items():
        for variant, v in entry["variants"].items():
            if "error" in v:
                print(f"| {m} | {variant} | | | failed: {v['error'][:60]} | | |")
                continue
            lat = [v["latency"][t] for t in ("1", "2")]
            print(f"| {m} | {variant} | {'yes' if variant == entry['quantization'] else ''} | "
                  f"{v['size_bytes'] / 1000:.1f} | {v['max_abs_diff_vs_torch']:.1e} | "
                  + " | ".join(f"{t['median_ms']:.3f} [{t['min_ms']:.3f}-{t['max_ms']:.3f}]" for t in lat) + " |")
    change = card["accuracy"]["retrieval_r1"].get("max_abs_change_vs_fp32", {})
    print("R@1, largest change vs ONNX fp32 over pairs: " + ", ".join(f"{k} {v:.3f}" for k, v in change.items()))
    rec = card["accuracy"].get("recognition")
    if rec:
        if rec["uf1"]:
            print(f"UF1 on {rec['n_clips']} clips: " + ", ".join(f"{k} {v:.3f}" for k, v in rec["uf1"].items())
                  + "; change vs fp32: " + ", ".join(f"{k} {v:.3f}" for k, v in rec["max_abs_change_vs_fp32"].items()))
        else:
            print(f"UF1 not measured: {rec['why_not']}")


def _summarize(results: dict) -> None:
    """Mean and spread over seeds of the deployed mix's accuracy change against ONNX fp32."""
    import numpy as np

    r1 = [c["accuracy"]["retrieval_r1"].get("max_abs_change_vs_fp32", {}).get("deployed") for c in results.values()]
    uf1 = [c["accuracy"]["recognition"]["max_abs_change_vs_fp32"].get("deployed")
           for c in results.values() if c["accuracy"].get("recognition", {}).get("uf1")]
    for what, values in (("R@1", r1), ("UF1", uf1)):
        values = [v for v in values if v is not None]
        if values:
            print(f"deployed mix, {what} change vs fp32 over {len(values)} exports: mean {np.mean(values):.3f}, "
                  f"sd {np.std(values, ddof=1) if len(values) > 1 else 0:.3f}, max {np.max(values):.3f}")


if __name__ == "__main__":
    main()
