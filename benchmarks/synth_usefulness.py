"""Does a synthetic corpus help AU-intensity estimation on people nobody trained on? (issue 15, item 5)

Arms, for every seed and every number of real training subjects ``n`` (``--subjects``):

- real only: the AU estimator of ``emosync synth score`` (:class:`synth.scoring.estimator.AUEstimator`,
  ``configs/synth/score.yaml``'s ``estimator``) trained on the face frames of ``n`` real subjects drawn
  (with the seed) from the generator's training subjects;
- real + synthetic at each ratio of ``--ratios`` (the share of synthetic frames in the training draw):
  the same ``n`` subjects plus the frames of ``--corpus``, a corpus sampled from a generator trained
  only on the ``--train`` sessions.

Every arm trains for the same number of steps with the same batch size and the same estimator, and
is scored on the ``--heldout`` sessions: subjects in neither the generator's training set nor any
arm's. The score is the Pearson r between the truth and the estimate, per AU over all held-out
frames, averaged over the AUs that vary in the held-out truth; the mean and SD over seeds are
printed as a markdown table and appended, one JSON line per run, to ``--log``.

The script refuses a corpus whose generator saw a held-out subject (its ``corpus.json`` and model
card name the training sessions), and a held-out session that is also a training session.

What this does not do (stated in RESULTS.md): the recognition arm (UF1/UAR with the recognizer of
``emosync recognize``), and a generator per arm: with one generator trained on all ``--train``
subjects, arms with ``n`` below that number get synthetic frames that carry the other training
subjects' faces too; only the arm with every training subject compares like with like.

Run (simulated rig): python benchmarks/synth_usefulness.py --train DIR/sessions/*.h5
    --heldout DIR/heldout/*.h5 --corpus DIR/corpus --subjects 4,8,20 --ratios 0,0.25,0.5,0.75 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from acquisition import logger
from synth.generative.frames import load_face_frames
from synth.scoring.config import load_score_config
from synth.scoring.controls import fit_estimator, sequence_groups
from synth.scoring.metrics import pearson_per_au, rendered_aus
from synth.scoring.reference import generator_subjects, read_corpus_sequences, session_subject


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", nargs="+", required=True, help="The generator's training sessions.")
    parser.add_argument("--heldout", nargs="+", required=True, help="Sessions of subjects nobody trained on.")
    parser.add_argument("--corpus", required=True, help="A corpus sampled from a generator trained on --train.")
    parser.add_argument("--subjects", default="4,8", help="Real training subjects per arm, comma-separated.")
    parser.add_argument("--ratios", default="0,0.25,0.5,0.75", help="Synthetic shares of the training draw.")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="Estimator steps (default: configs/synth/score).")
    parser.add_argument("--stride", type=int, default=2, help="Every stride-th frame of each real session.")
    parser.add_argument("--log", default="synth_usefulness.jsonl")
    args = parser.parse_args()
    logger.setLevel(logging.WARNING)

    cfg = load_score_config("score", [f"estimator.steps={args.steps}"] if args.steps else [])
    train_subjects = sorted({session_subject(f) for f in args.train})
    held_subjects = sorted({session_subject(f) for f in args.heldout})
    if set(train_subjects) & set(held_subjects):
        raise SystemExit(f"--heldout shares subjects {sorted(set(train_subjects) & set(held_subjects))} with --train.")
    corpus = read_corpus_sequences(args.corpus, cfg.image_size)
    gen_subjects, source = generator_subjects(corpus.manifest)
    if gen_subjects is None or set(gen_subjects) & set(held_subjects):
        raise SystemExit(f"The corpus's generator subjects ({source}) are unknown or include held-out subjects.")

    real = load_face_frames(list(args.train), cfg.image_size, stride=args.stride)
    held = load_face_frames(list(args.heldout), cfg.image_size)
    scored = rendered_aus(held.aus, min_std=cfg.rendered.min_std)
    syn_groups = np.char.add("syn-", sequence_groups(corpus.bounds, len(corpus.rgbd)).astype(str))
    print(f"real frames {len(real)} of {len(train_subjects)} subjects; held-out {len(held)} of {held_subjects}; "
          f"synthetic {len(corpus.rgbd)} frames in {len(corpus.bounds)} sequences; generator subjects "
          f"{len(gen_subjects)}; scored AUs {int(scored.sum())}; estimator steps {cfg.estimator.steps}")

    rows = []
    log = Path(args.log)
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for n in [int(x) for x in args.subjects.split(",")]:
            chosen = np.random.default_rng(seed).choice(train_subjects, size=min(n, len(train_subjects)),
                                                        replace=False)
            mask = np.isin(real.subject_ids.astype(str), chosen)
            for ratio in [float(x) for x in args.ratios.split(",")]:
                rgbd, aus, groups = _mix(real.rgbd[mask], real.aus[mask], real.session_files[mask].astype(str),
                                         corpus, syn_groups, ratio, seed)
                t0 = time.perf_counter()
                estimator = fit_estimator(rgbd, aus, cfg.estimator, seed=seed, groups=groups)
                pred = estimator.predict(held.rgbd, groups=held.session_files)
                r = pearson_per_au(held.aus, pred)[scored]
                row = {"seed": seed, "n_subjects": len(chosen), "ratio": ratio,
                       "mean_r": float(np.nanmean(r)), "train_frames": int(len(rgbd)),
                       "seconds": round(time.perf_counter() - t0, 1), "subjects": sorted(map(str, chosen))}
                rows.append(row)
                with log.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(json.dumps({k: row[k] for k in ("seed", "n_subjects", "ratio", "mean_r", "seconds")}),
                      flush=True)
    print("\n| real subjects | synthetic share | mean r on held-out subjects (mean +- SD over seeds) | seeds |")
    print("|---|---|---|---|")
    for n in sorted({r["n_subjects"] for r in rows}):
        for ratio in sorted({r["ratio"] for r in rows}):
            vals = [r["mean_r"] for r in rows if r["n_subjects"] == n and r["ratio"] == ratio]
            print(f"| {n} | {ratio:.0%} | {np.mean(vals):.3f} +- {np.std(vals, ddof=1) if len(vals) > 1 else 0:.3f} "
                  f"| {len(vals)} |")


def _mix(real_rgbd, real_aus, real_groups, corpus, syn_groups, ratio: float, seed: int):
    """The real frames plus whole synthetic sequences (drawn with replacement) making ``ratio`` of the total.

    Whole sequences, so the estimator's per-sequence median frame is the same however often one is drawn.
    """
    if ratio <= 0:
        return real_rgbd, real_aus, real_groups
    wanted = len(real_rgbd) * ratio / (1.0 - ratio)
    rng = np.random.default_rng(seed + 1000)
    rows: list[np.ndarray] = []
    drawn = 0
    while drawn < wanted:
        a, b = corpus.bounds[rng.integers(len(corpus.bounds))]
        rows.append(np.arange(a, b))
        drawn += b - a
    pick = np.concatenate(rows)
    return (np.concatenate([real_rgbd, corpus.rgbd[pick]]), np.concatenate([real_aus, corpus.requested[pick]]),
            np.concatenate([real_groups, syn_groups[pick]]))


if __name__ == "__main__":
    main()
