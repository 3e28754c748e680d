"""Sampling speed and AU fidelity per diffusion sampler, step count and model (issue 15: sampler steps vs fidelity).

For every model of ``--models`` and every ``SAMPLER:STEPS`` of ``--settings`` (default
``ddim:5,ddim:10,ddim:25,dpm++:5,dpm++:10,dpm++:25``):

1. speed: one fixed request (the first emotion, ``--kind``, ``--frames`` frames, one new identity)
   is sampled ``--repeats`` times; sequences/s is reported as median and range over the repeats;
2. fidelity: a corpus of ``--n`` sequences is written with ``synth.generative.sample_corpus`` (the
   same ``--seed``, emotions and new identities for every model and setting, so the AU requests are
   identical and rows differ only in the model and the sampler), and measured by **one** AU
   estimator, that of ``emosync synth score`` (``configs/synth/score.yaml``), trained once on the
   ``--reference`` sessions: subjects no generator saw (checked against each model card, as ``synth
   score`` does). Per row: mean r over the AUs that vary in the reference and in the requests, mean
   MAE, timing error in frames, flicker, and the shuffled-request floor.

Two more rows are measured by the same estimator on the same requests:

- ``rig render (perfect generator)``, with ``--rig-identities``: the simulated rig's own face renderer
  (``synth.rig.face.FaceRenderer``, ``--rig-profile`` and ``--rig-overrides``, still frontal head as in
  the light profile) draws every requested AU course on new rig identities, sequence ``i`` on identity
  ``i mod n``, and the frames go through the same crop as real sessions (``load_face_frames``). This
  is "real held-out frames of the same AU course" of issue 15 for the simulated rig: what the scorer
  reads from a generator that renders exactly what is asked, on people it has not seen. It only means
  that when the reference and training sessions come from the same rig configuration.
- the floor of each row (shuffled requests).

(The k-fold ceiling on reference episodes and the memorization baseline do not depend on the sampler:
``emosync synth score`` reports them.)

Usage::

    python benchmarks/synth_sampler_curve.py --models models/m1 --reference heldout/*.h5 --workdir /tmp/curve \\
        --n 24 --emotion happiness,surprise,anger,sadness --new-identities 8 --seed 3 --threads 1
    python benchmarks/synth_sampler_curve.py --models m-2000 m-4000 m-6000 --settings ddim:10 ...   # steps curve

Corpora already in ``--workdir`` (``<model folder name>/<sampler>-<steps>``) are reused, so a stopped
run resumes; the table goes to stdout and, with ``--json-out``, to a JSON file. CPU figures depend on
the machine's load: compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def parse_settings(text: str) -> list[tuple[str, int]]:
    """``"ddim:5,dpm++:10"`` -> ``[("ddim", 5), ("dpm++", 10)]``."""
    settings = []
    for item in text.split(","):
        sampler, _, steps = item.strip().partition(":")
        if not steps.isdigit() or int(steps) < 1:
            raise SystemExit(f"--settings: {item!r} is not SAMPLER:STEPS (e.g. dpm++:10).")
        settings.append((sampler, int(steps)))
    return settings


def time_sampling(gen, aus: np.ndarray, identity: np.ndarray | None, sampler: str, steps: int, *,
                  repeats: int) -> list[float]:
    """Seconds per sequence for ``repeats`` samplings of one request."""
    gen.set_sampler(sampler)
    extra = {} if identity is None else {"identity": identity}
    times = []
    for k in range(repeats):
        tic = time.perf_counter()
        gen.sample(aus, seed=k, num_inference_steps=steps, **extra)
        times.append(time.perf_counter() - tic)
    return times


def render_on_rig(requested: np.ndarray, bounds: list[tuple[int, int]], fps: float, identities: list[int],
                  workdir: Path, *, profile: str, overrides: list[str], image_size: int):
    """The requested AU courses drawn by the rig's face renderer on ``identities``, cropped as real sessions.

    Sequence ``i`` is rendered on identity ``identities[i % n]`` and written, with its AUs, as one
    session per identity (still frontal head), so :func:`synth.generative.frames.load_face_frames`
    crops and scales them exactly as it does real rig sessions. Returns the frames in corpus order.
    """
    from acquisition import SessionWriter, StreamSpec
    from acquisition.annotate.action_units import AU_IDS, AU_LABELS
    from synth.generative.frames import load_face_frames
    from synth.rig.config import load_rig_config
    from synth.rig.face import FaceRenderer
    from synth.rig.offline import subject_id

    rig = load_rig_config(profile, overrides)
    video, family = rig.rgb, rig.face.family
    folder = workdir / "rig-render"
    folder.mkdir(parents=True, exist_ok=True)
    order = []
    for k, identity in enumerate(identities):
        mine = [i for i in range(len(bounds)) if i % len(identities) == k]
        if not mine:
            continue
        rows = np.concatenate([np.arange(*bounds[i]) for i in mine])
        renderer = FaceRenderer(video.width, video.height, identity_seed=identity, family=family)
        rendered = [renderer.render(a) for a in requested[rows].astype(np.float64)]
        rgb, depth = np.stack([r[0] for r in rendered]), np.stack([r[1] for r in rendered])
        times = np.arange(len(rows)) / fps
        fname = folder / f"{subject_id(identity)}.h5"
        fname.unlink(missing_ok=True)
        with SessionWriter(fname, subject_id=subject_id(identity), notes="rig render of requested AU courses") as w:
            w.add_stream(StreamSpec("RGB", "VideoRaw", video.height * video.width * 3, "int8", fps, "rig-rgb",
                                    frame_shape=(video.height, video.width, 3), encoding="RGB8")).append(rgb, times)
            w.add_stream(StreamSpec("Depth", "VideoRaw", video.height * video.width, "int16", fps, "rig-depth",
                                    frame_shape=(video.height, video.width), encoding="DEPTH16-mm")
                         ).append(depth, times)
            w.add_stream(StreamSpec("ActionUnits", "ActionUnits", len(AU_IDS), "float32", fps, "rig-au",
                                    channel_labels=AU_LABELS)).append(requested[rows], times)
        frames = load_face_frames([fname], image_size)
        order.append((rows, frames.rgbd))
    rgbd = np.empty((len(requested), *order[0][1].shape[1:]), np.float32)
    for rows, frames in order:
        rgbd[rows] = frames
    return rgbd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, nargs="+", required=True,
                        help="Diffusion model folders (synth train --out); the first is timed at every setting.")
    parser.add_argument("--reference", type=Path, nargs="+", required=True,
                        help="Real sessions of subjects the generator never saw (the estimator's training data).")
    parser.add_argument("--workdir", type=Path, required=True, help="Where the corpora go (reused on rerun).")
    parser.add_argument("--settings", default="ddim:5,ddim:10,ddim:25,dpm++:5,dpm++:10,dpm++:25")
    parser.add_argument("--n", type=int, default=24, help="Sequences per corpus.")
    parser.add_argument("--emotion", default="happiness,surprise,anger,sadness")
    parser.add_argument("--kind", default="micro")
    parser.add_argument("--frames", type=int, default=None, help="Frames per sequence (default: the expression's).")
    parser.add_argument("--new-identities", type=int, default=8)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="Timed samplings per setting (first model only).")
    parser.add_argument("--rig-identities", default="301,302,303,304",
                        help="Rig identity seeds of the perfect-generator row (empty: no such row).")
    parser.add_argument("--rig-profile", default="light")
    parser.add_argument("--rig-overrides", default="face.family=wide", help="Comma-separated rig overrides.")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads.")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from synth.generative import load_generator
    from synth.generative.corpus import emotion_request, sample_corpus
    from synth.scoring.config import load_score_config
    from synth.scoring.controls import fit_estimator
    from synth.scoring.reference import check_reference_subjects, generator_subjects, load_reference_frames, \
        read_corpus_sequences
    from synth.scoring.score import measure_sequences, scored_aus

    torch.set_num_threads(args.threads)
    settings = parse_settings(args.settings)
    emotions = [e.strip() for e in args.emotion.split(",") if e.strip()]
    cfg = load_score_config()
    args.workdir.mkdir(parents=True, exist_ok=True)

    speed, corpora = {}, {}
    for m, model in enumerate(args.models):
        gen = load_generator(model)
        if gen.kind != "diffusion":
            raise SystemExit(f"{model} is a {gen.kind} model; samplers and steps apply to diffusion models only.")
        for sampler, _ in settings:
            gen.set_sampler(sampler)  # an unknown name fails here, before any work
        if m == 0:  # speed depends on the architecture, not the weights: time the first model only
            request = emotion_request(emotions[0], args.kind, seed=args.seed, fps=30.0, n_frames=args.frames)
            identity = gen.prior.draw(1, seed=args.seed)[0] if gen.has_identity else None
            speed = {f"{s}:{k}": time_sampling(gen, request.aus, identity, s, k, repeats=args.repeats)
                     for s, k in settings}
            frames_timed = len(request.aus)
        for sampler, steps in settings:
            out = args.workdir / model.name / f"{sampler.replace('+', 'p')}-{steps}"
            if not (out / "corpus.json").is_file():
                sample_corpus(model, out, n=args.n, seed=args.seed, emotions=emotions, kind=args.kind,
                              n_frames=args.frames, new_identities=args.new_identities if gen.has_identity else None,
                              num_inference_steps=steps, sampler=sampler, generator=gen)
            corpus = read_corpus_sequences(out, cfg.image_size)
            gen_subjects, source = generator_subjects(corpus.manifest)
            check_reference_subjects(args.reference, gen_subjects, source=source)
            corpora[(model.name, f"{sampler}:{steps}")] = corpus
    first = next(iter(corpora.values()))
    for (name, setting), corpus in corpora.items():
        if not np.array_equal(corpus.requested, first.requested):
            raise SystemExit(f"{name} {setting} asked for other AUs than the first corpus; remove its folder so "
                             "that it is sampled again with the same --seed and options.")
    ref = load_reference_frames(args.reference, cfg.image_size)
    _, scored = scored_aus(ref.aus, first.requested, cfg)
    estimator = fit_estimator(ref.rgbd, ref.aus, cfg.estimator, seed=cfg.seed, groups=ref.session_files)

    def measure(rgbd: np.ndarray) -> tuple[dict, dict]:
        _, result, floor = measure_sequences(estimator, first.requested, rgbd, first.bounds, scored, seed=cfg.seed)
        return result, floor

    def row(model: str, setting: str, rgbd: np.ndarray, seconds: list[float] | None) -> dict:
        result, floor = measure(rgbd)
        return {"model": model, "setting": setting, "seconds_per_sequence": seconds,
                **{k: result[k] for k in ("mean_r", "mean_mae", "timing", "flicker")},
                "floor_mean_r": floor["mean_r"], "r": result["r"], "n_sequences": result["n_sequences"]}

    rows = [row(name, setting, corpus.rgbd, speed[setting] if name == args.models[0].name else None)
            for (name, setting), corpus in corpora.items()]
    if args.rig_identities:
        fps = float(first.records[0].get("fps", 30.0))
        rig = render_on_rig(first.requested, first.bounds, fps, [int(i) for i in args.rig_identities.split(",")],
                            args.workdir, profile=args.rig_profile,
                            overrides=[o for o in args.rig_overrides.split(",") if o], image_size=cfg.image_size)
        rows.append(row("rig render (perfect generator)", "-", rig, None))

    print(f"\n{args.n} sequences per row, seed {args.seed}; one estimator trained on {len(args.reference)} reference "
          f"session(s), {int(scored.sum())} AUs scored; speed: {frames_timed}-frame sequence, {args.threads} "
          f"thread(s), median [range] of {args.repeats}, {args.models[0].name} only")
    print("| model | sampler:steps | sequences/s | mean r | mean MAE | timing error (frames) | flicker | floor r |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        timing_frames = (r["timing"] or {}).get("mean_abs_frames")
        if r["seconds_per_sequence"]:
            per_s = 1 / np.asarray(r["seconds_per_sequence"])
            sp = f"{np.median(per_s):.3f} [{per_s.min():.3f}-{per_s.max():.3f}]"
        else:
            sp = "-"
        print(f"| {r['model']} | {r['setting']} | {sp} | {r['mean_r']:.3f} | {r['mean_mae']:.3f} | "
              f"{'n/a' if timing_frames is None else f'{timing_frames:.2f}'} | {r['flicker']:.5f} | "
              f"{r['floor_mean_r']:.3f} |")
    if args.json_out:
        args.json_out.write_text(json.dumps({"models": [str(m) for m in args.models], "seed": args.seed,
                                             "n": args.n, "frames_timed": frames_timed,
                                             "reference": [str(f) for f in args.reference], "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
