"""Does a synthetic corpus help AU-intensity estimation or expression recognition on people nobody trained on?

(issue 15, item 5). ``--task au`` (the default) scores AU-intensity estimation, ``--task recognition``
expression recognition. AU task: arms, for every seed and every number of real training subjects ``n``
(``--subjects``):

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

Recognition task: the same ``n`` subjects per seed (the same draw), and per share of ``--ratios`` the
expression recognizer of ``emosync recognize`` (:mod:`fusion.recognition`, ``--recognize-config``,
default ``configs/recognize/default.yaml``) trained from scratch (``scratch_config``'s encoders from a
random init seeded with the seed, the config's ``mode``) on one clip per ground-truth expression
interval (the ``Markers`` stream) of the ``n`` subjects' sessions, plus, for a share above 0,
synthetic intervals: one per corpus sequence, drawn with the seed without replacement (nested: a
smaller share's draw is part of a larger one's), as many as make that share of the training
intervals (0.5: as many synthetic as real). A corpus with too few is used whole and the run says so.
The corpus holds only video, so every arm sees ``rgb`` and ``depth`` only (EMG and EEG are not even
read); every arm has the same model, steps (``--steps``, default the config's) and batch size.
Scored on every interval of the ``--heldout`` sessions: UF1 and UAR (MEGC 2019, over the classes the
held-out intervals show; :func:`fusion.recognition.evaluate.megc_scores`) of the config's class set
(``megc3``), next to chance: a classifier that guesses with the arm's training class prior, as
``emosync recognize evaluate`` reports it. The table gives UF1 and UAR as mean +- SD over seeds and
the UF1 change against the real-only arm of the same seed and ``n``; one JSON line per run goes to
``--log``.

Clip length (recognition): the recognizer's clip is its pretraining config's window (1 s in
``configs/pretrain/tiny.yaml``) centred on the apex, and an interval whose clip reaches past its
recording's video is left out (:func:`fusion.recognition.train.read_clips`; with no interval left it
refuses). A sequence of ``emosync synth sample`` without ``--frames`` has 0.1 s of neutral face on
either side of the expression, so a 0.4-0.7 s micro sequence never holds a 1 s clip, and every
synthetic interval would silently drop out (``--frames 45`` at 30 fps centres a micro-expression in
1.5 s, which holds one). The window is therefore the longest apex-centred clip that fits inside every
corpus sequence (``--window-s`` sets one; the config's window when shorter), for every arm and the
held-out clips alike, so one model sees one clip geometry; its frames per clip stay the config's.
Not corrected: the recognizer's per-session video normalisation (``video_norm: session``) takes its
mean frame and scale from the sequence itself, which on a 12-20-frame sequence is mostly expression,
so normalised synthetic clips are on another scale than real ones (on a 12-sequence corpus of the
simulated rig, their frame-to-frame change was 5x the real clips' in RGB and 20x in depth).

The script refuses a corpus whose generator saw a held-out subject (its ``corpus.json`` and model
card name the training sessions), and a held-out session that is also a training session.

What this does not do (stated in RESULTS.md): a generator per arm: with one generator trained on
all ``--train`` subjects, arms with ``n`` below that number get synthetic frames that carry the
other training subjects' faces too; only the arm with every training subject compares like with like.

Run (simulated rig): python benchmarks/synth_usefulness.py --train DIR/sessions/*.h5
    --heldout DIR/heldout/*.h5 --corpus DIR/corpus --subjects 4,8,20 --ratios 0,0.25,0.5,0.75 --seeds 3
Recognition: the same with ``--task recognition`` (and ``--threads 1`` on a shared CPU); ``--steps N``
for a shorter budget than the config's.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from acquisition import logger, open_session
from fusion.config import load_pretrain_config
from fusion.recognition.classes import class_names, map_label
from fusion.recognition.config import RecognizeConfig, load_recognize_config
from fusion.recognition.evaluate import chance_confusion, confusion_matrix, megc_scores
from fusion.recognition.intervals import ExpressionInterval, read_all_intervals, read_intervals
from fusion.recognition.train import EncoderSource, class_targets, fit, new_model, predict_logits, read_clips, \
    torch_threads
from synth.generative.corpus import read_corpus
from synth.generative.frames import load_face_frames
from synth.scoring.config import load_score_config
from synth.scoring.controls import fit_estimator, sequence_groups
from synth.scoring.metrics import pearson_per_au, rendered_aus
from synth.scoring.reference import generator_subjects, read_corpus_sequences, session_subject

#: The recognition task's modalities: a corpus holds only video, so real and synthetic arms alike see only video.
VIDEO_MODALITIES = ("rgb", "depth")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", nargs="+", required=True, help="The generator's training sessions.")
    parser.add_argument("--heldout", nargs="+", required=True, help="Sessions of subjects nobody trained on.")
    parser.add_argument("--corpus", required=True, help="A corpus sampled from a generator trained on --train.")
    parser.add_argument("--subjects", default="4,8", help="Real training subjects per arm, comma-separated.")
    parser.add_argument("--ratios", default="0,0.25,0.5,0.75", help="Synthetic shares of the training draw.")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--task", choices=("au", "recognition"), default="au",
                        help="au: AU-intensity estimation; recognition: expression recognition (UF1/UAR).")
    parser.add_argument("--steps", type=int, default=None,
                        help="Estimator (au) or recognizer (recognition) steps (default: the task's config).")
    parser.add_argument("--stride", type=int, default=2, help="Every stride-th frame of each real session (au).")
    parser.add_argument("--recognize-config", default="default",
                        help="configs/recognize name or .yaml path (recognition).")
    parser.add_argument("--window-s", type=float, default=None,
                        help="Clip length in s (recognition; default: the longest that fits every corpus sequence).")
    parser.add_argument("--threads", type=int, default=0, help="Torch CPU threads (recognition; 0: the config's).")
    parser.add_argument("--log", default="synth_usefulness.jsonl")
    args = parser.parse_args()
    logger.setLevel(logging.WARNING)
    if args.task == "recognition":
        _recognition(args)
        return

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


def _recognition(args: argparse.Namespace) -> None:
    """The recognition task (see the module docstring): one recognizer from scratch per seed, ``n`` and share."""
    overrides = ["modalities=[" + ",".join(VIDEO_MODALITIES) + "]"]
    overrides += [f"optim.steps={args.steps}"] if args.steps else []
    overrides += [f"threads={args.threads}"] if args.threads else []
    cfg = load_recognize_config(args.recognize_config, overrides)
    ratios = [float(x) for x in args.ratios.split(",")]
    if any(not 0 <= r < 1 for r in ratios):
        raise SystemExit(f"--ratios must lie in [0, 1) (the synthetic share of the training intervals), got {ratios}.")
    subject_of = {f: session_subject(f) for f in args.train}
    train_subjects = sorted(set(subject_of.values()))
    held_subjects = sorted({session_subject(f) for f in args.heldout})
    if set(train_subjects) & set(held_subjects):
        raise SystemExit(f"--heldout shares subjects {sorted(set(train_subjects) & set(held_subjects))} with --train.")
    try:
        manifest = read_corpus(args.corpus)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"--corpus {args.corpus}: {err}") from None
    gen_subjects, source = generator_subjects(manifest)
    if gen_subjects is None or set(gen_subjects) & set(held_subjects):
        raise SystemExit(f"The corpus's generator subjects ({source}) are unknown or include held-out subjects.")

    syn_intervals = _corpus_intervals(Path(args.corpus), manifest, cfg)
    scratch = load_pretrain_config(cfg.scratch_config)
    fits_s, period_s = _fitting_window(syn_intervals, cfg.anchor)
    window_s = args.window_s or min(scratch.data.window_s, fits_s)
    if window_s < 3 * period_s:
        raise SystemExit(f"A {window_s:.3f} s clip (the corpus's sequences leave room for {fits_s:.3f} s around the "
                         f"{cfg.anchor}) holds fewer than 3 frames: no clip would show the expression's course.")
    # The scratch encoders with the clip geometry of every arm: the window that fits (module docstring) and
    # the video modalities only, so neither clips nor model carry EMG/EEG that no synthetic clip could have.
    encoders = EncoderSource(None, cfg.scratch_config)
    encoders.config = load_pretrain_config(cfg.scratch_config, [
        "data.modalities=[" + ",".join(VIDEO_MODALITIES) + "]", f"data.window_s={window_s}"])

    seeds = range(args.first_seed, args.first_seed + args.seeds)
    sizes = [int(x) for x in args.subjects.split(",")]
    draws = {(seed, n): sorted(map(str, np.random.default_rng(seed).choice(
        train_subjects, size=min(n, len(train_subjects)), replace=False))) for seed in seeds for n in sizes}
    needed = set().union(*draws.values())   # only the sessions some arm trains on are read
    real_intervals = read_all_intervals([f for f in args.train if subject_of[f] in needed], cfg.intervals)
    pool = read_clips(real_intervals + syn_intervals, encoders.config, anchor=cfg.anchor)
    held = read_clips(read_all_intervals(args.heldout, cfg.intervals), encoders.config, anchor=cfg.anchor)
    # Labels outside the class set raise here, for real, synthetic and held-out intervals alike.
    targets, held_targets = class_targets(pool, cfg.classes), class_targets(held, cfg.classes)
    classes = class_names(cfg.classes)
    syn_files = {i.session for i in syn_intervals}
    is_syn = np.array([i.session in syn_files for i in pool.intervals])
    owner = pool.subjects.astype(str)
    syn_all = np.flatnonzero(is_syn)
    print(f"{cfg.classes} classes {classes}; clips {window_s:.3f} s around the {cfg.anchor} "
          f"({encoders.config.data.clip_frames} frames, {encoders.config.data.image_size} px, "
          f"{'/'.join(VIDEO_MODALITIES)}; config window {scratch.data.window_s:g} s, corpus fits {fits_s:.3f} s); "
          f"{cfg.mode} from scratch ({cfg.scratch_config}), {cfg.optim.steps} steps x batch {cfg.optim.batch_size}")
    print(f"real intervals {int((~is_syn).sum())} of {len(real_intervals)} with room for a clip, "
          f"{_counts(targets[~is_syn], classes)}, per subject: " + ", ".join(
              f"{s} {int((owner[~is_syn] == s).sum())}" for s in sorted(set(owner[~is_syn]))))
    print(f"synthetic intervals {len(syn_all)} of {len(syn_intervals)}, {_counts(targets[is_syn], classes)}; held-out "
          f"{len(held)} intervals of {held_subjects}, {_counts(held_targets, classes)}; generator subjects "
          f"{len(gen_subjects)}")
    for (seed, n), chosen in draws.items():   # before any training: a one-class draw cannot train a classifier
        present = np.unique(targets[~is_syn & np.isin(owner, chosen)])
        if len(present) < 2:
            raise SystemExit(f"Seed {seed}, {n} subjects ({chosen}): the real intervals hold "
                             f"{len(present)} class(es) of {classes}; a classifier needs two. Use more subjects.")

    rows = []
    log = Path(args.log)
    for seed in seeds:
        for n in sizes:
            chosen = draws[(seed, n)]
            real_idx = np.flatnonzero(~is_syn & np.isin(owner, chosen))
            order = np.random.default_rng(seed + 1000).permutation(syn_all)   # nested draws across shares
            for ratio in ratios:
                wanted = int(round(len(real_idx) * ratio / (1.0 - ratio)))
                idx = np.concatenate([real_idx, order[:wanted]])
                note = (f"corpus has {len(order)} synthetic intervals, {wanted} wanted: all used"
                        if wanted > len(order) else "")
                t0 = time.perf_counter()
                model = new_model(encoders, pool, cfg, seed)
                with torch_threads(cfg.threads):
                    fit(model, pool, _full_batches(idx, cfg.optim.batch_size), targets, cfg, encoders.config.augment,
                        seed=seed)
                    pred = predict_logits(model, held).argmax(1).numpy()
                matrix = confusion_matrix(held_targets, pred, len(classes))
                train_counts = np.bincount(targets[idx], minlength=len(classes))
                scores = megc_scores(matrix)
                chance = megc_scores(chance_confusion(matrix.sum(1), train_counts))
                row = {"task": "recognition", "seed": seed, "n_subjects": len(chosen), "ratio": ratio,
                       "uf1": scores["uf1"], "uar": scores["uar"], "chance_uf1": chance["uf1"],
                       "chance_uar": chance["uar"], "train_real": int(len(real_idx)),
                       "train_synthetic": int(len(idx) - len(real_idx)), "synthetic_wanted": wanted,
                       "synthetic_share": float(1 - len(real_idx) / len(idx)), "note": note,
                       "train_counts": dict(zip(classes, train_counts.tolist())), "classes": classes,
                       "confusion": matrix.tolist(), "steps": cfg.optim.steps, "batch_size": cfg.optim.batch_size,
                       "mode": cfg.mode, "modalities": list(cfg.modalities), "window_s": window_s,
                       "clip_frames": encoders.config.data.clip_frames, "recognize_config": args.recognize_config,
                       "corpus": str(args.corpus), "seconds": round(time.perf_counter() - t0, 1),
                       "subjects": chosen}
                rows.append(row)
                with log.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(json.dumps({k: row[k] for k in ("seed", "n_subjects", "ratio", "uf1", "uar", "train_real",
                                                      "train_synthetic", "seconds")}), flush=True)
                if note:
                    print(f"  seed {seed}, {len(chosen)} subjects, share {ratio:.0%}: {note} "
                          f"(share {row['synthetic_share']:.0%})", flush=True)
    _recognition_table(rows)


def _corpus_intervals(corpus: Path, manifest: dict, config: RecognizeConfig) -> list[ExpressionInterval]:
    """The expression interval of every corpus sequence with an emotion, checked against ``corpus.json``.

    A sequence sampled from explicit AU curves has no emotion and no ``Markers``: nothing to recognize.
    The marker label must be the emotion ``corpus.json`` lists and map to the same class, so the
    synthetic clips are labelled as the generator was asked, through the recognizer's own mapping.
    """
    records = [r for r in manifest.get("sequences") or [] if r.get("emotion")]
    if not records:
        raise SystemExit(f"{corpus / 'corpus.json'} lists no sequence with an emotion; there is nothing to recognize.")
    out: list[ExpressionInterval] = []
    for record in records:
        found = read_intervals(corpus / record["file"], config.intervals)
        wrong = [i.label for i in found if map_label(i.label, config.classes) != map_label(record["emotion"],
                                                                                              config.classes)]
        if wrong:
            raise SystemExit(f"{record['file']}: markers {wrong} but corpus.json says {record['emotion']!r}.")
        out += found
    return out


def _fitting_window(intervals: list[ExpressionInterval], anchor: str) -> tuple[float, float]:
    """The longest clip centred like the recognizer's that lies inside every interval's video, and a frame period.

    The recognizer measures room against its session's first RGB stream (``read_clips``), so this does
    too; the length is rounded down to the millisecond, so the clip still fits after float rounding.
    """
    room, period = [], 0.0
    for fname in dict.fromkeys(i.session for i in intervals):
        with open_session(fname) as session:
            times = next(s for s in session.streams.values() if s.modality == "rgb").times
        period = max(period, float(np.median(np.diff(times))) if len(times) > 1 else 0.0)
        room += [2 * min(i.centre_s(anchor) - times[0], times[-1] - i.centre_s(anchor))
                 for i in intervals if i.session == fname]
    return float(np.floor(max(min(room), 0.0) * 1000) / 1000), period


def _full_batches(idx: np.ndarray, batch_size: int) -> np.ndarray:
    """``idx`` repeated whole until it holds a batch.

    :func:`fusion.recognition.train.fit` draws each batch without replacement from its indices, so a
    training set smaller than the batch would give smaller batches in the arms with fewer intervals.
    Whole repeats keep every arm's class proportions (and so its class weights) unchanged.
    """
    return np.tile(idx, -(-batch_size // len(idx)))


def _counts(targets: np.ndarray, classes: list[str]) -> dict[str, int]:
    return dict(zip(classes, np.bincount(targets, minlength=len(classes)).tolist()))


def _recognition_table(rows: list[dict]) -> None:
    """The markdown table of the recognition runs: mean +- SD over seeds, UF1 change paired by seed."""
    def cell(vals: list[float]) -> str:
        if not vals:
            return "-"
        return f"{np.mean(vals):.3f} +- {np.std(vals, ddof=1) if len(vals) > 1 else 0:.3f}"

    print("\n| real subjects | synthetic share | UF1 (mean +- SD over seeds) | UAR (mean +- SD) "
          "| UF1 change vs real only (paired by seed) | chance UF1 / UAR (training prior) | seeds |")
    print("|---|---|---|---|---|---|---|")
    for n in sorted({r["n_subjects"] for r in rows}):
        base = {r["seed"]: r["uf1"] for r in rows if r["n_subjects"] == n and r["ratio"] == 0}
        for ratio in sorted({r["ratio"] for r in rows}):
            arm = [r for r in rows if r["n_subjects"] == n and r["ratio"] == ratio]
            share = f"{ratio:.0%}"
            actual = np.mean([r["synthetic_share"] for r in arm])
            if any(r["note"] for r in arm):
                share += f" (corpus too small: {actual:.0%})"
            change = cell([r["uf1"] - base[r["seed"]] for r in arm if r["seed"] in base]) if ratio > 0 else "-"
            print(f"| {n} | {share} | {cell([r['uf1'] for r in arm])} | {cell([r['uar'] for r in arm])} | {change} "
                  f"| {np.mean([r['chance_uf1'] for r in arm]):.3f} / {np.mean([r['chance_uar'] for r in arm]):.3f} "
                  f"| {len(arm)} |")


if __name__ == "__main__":
    main()
