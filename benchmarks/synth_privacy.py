"""Can the privacy audit fail? The audit on an honest tiny generator and on a deliberately overfitted one.

Simulated light-rig sessions (``synth.rig.offline``, idle head motion and tonic AUs on, so two
moments of one face are never pixel-identical), one subject per rendered face:

- training: faces 3, 5 and 9, one session each;
- held-out *sessions of the training subjects* (other seeds): the frame-level baseline;
- held-out *subjects* (faces 7 and 11): the identity-level baseline.

Models (part A's ``tiny-diffusion`` config, 32 px, through :func:`synth.generative.train.train_generator`):

- ``honest``: all training sessions, ``--steps`` steps;
- ``overfit``: 20 frames of face 3 only (``data.max_frames=20``), ``--overfit-steps`` steps.

Each model samples a corpus (part A's corpus writer, macro expressions of the seven emotions,
10 DDIM steps), audited against both baselines; the overfitted model also samples a corpus
through the rejection filter (``NearestNeighbourFilter.from_model_dir``, ``--filter-threshold``:
0.035 RMS by default, because the auto threshold, made for near-copies, rejects none of this
model's samples), whose rejection rate the audit reports. As calibration, a corpus of copies of training frames (+ small
noise) and one of held-out real frames are audited too.

Prints a markdown table and the command that produced it.

Run: python benchmarks/synth_privacy.py [--duration 20] [--steps 400] [--overfit-steps 800] [--threads 1]
         [--sequences 6] [--filter-threshold 0.035|auto] [--workdir DIR] [--set membership.max_frames=128 ...]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RIG_OVERRIDES = ["timeline.expressions_per_minute=30", "idle.enabled=true"]


def write_session(fname: Path, *, seed: int, identity: int, duration_s: float) -> Path:
    from synth.rig.offline import write_rig_session

    return write_rig_session(fname, duration_s=duration_s, seed=seed, profile="light",
                             overrides=[*RIG_OVERRIDES, f"identity_seed={identity}"],
                             modalities=("rgb", "depth", "au"))


def train(sessions: list[Path], out: Path, overrides: list[str]) -> Path:
    from acquisition.utils.model_folder import is_model_folder
    from synth.generative.config import load_synth_config
    from synth.generative.train import train_generator

    if is_model_folder(out):
        return out
    config = load_synth_config("tiny-diffusion", ["logging.sample_every=100000", *overrides])
    return train_generator(sessions, config, out, progress=False, device="cpu")


def sample_corpus(model: Path, out: Path, *, n_sequences: int, seed: int, reject: str | float | None = None) -> Path:
    """Part A's corpus writer: macro expressions of the seven EMFACS emotions, cycled; optionally filtered."""
    from acquisition.annotate.action_units import EMOTIONS
    from synth.generative.corpus import sample_corpus as run
    from synth.privacy import NearestNeighbourFilter

    if not (out / "corpus.json").is_file():
        nn_filter = NearestNeighbourFilter.from_model_dir(model, reject) if reject is not None else None
        run(model, out, n=n_sequences, seed=seed, emotions=EMOTIONS, kind="macro", reject=nn_filter,
            num_inference_steps=10, max_attempts_factor=20)
    return out


def audit(model: Path, corpus: Path, train_sessions: list[Path], holdout: list[Path], overrides: list[str]) -> dict:
    from synth.privacy import audit_corpus, load_audit_config

    report = audit_corpus(model, corpus, train_sessions, holdout, load_audit_config("audit", overrides))
    return report.result


def _f(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def row(case: str, baseline: str, r: dict, rate: float | None) -> str:
    nn, emb, mia = r["nearest_neighbour"], r.get("nearest_neighbour_embedding") or {}, r["membership_inference"]
    s, h = nn["synthetic_to_train"], nn["holdout_to_train"]
    es, eh = emb.get("synthetic_to_train"), emb.get("holdout_to_train")
    failed = [k for k, c in r["checks"].items() if c["passed"] is False]
    accuracy = (emb.get("encoder") or {}).get("validation_accuracy")
    return (f"| {case} | {baseline} | {'PASS' if r['passed'] else 'FAIL'} | {_f(s['p01'])} / {_f(h['p01'])} | "
            f"{_f(s['median'])} / {_f(h['median'])} | "
            f"{_f(es and es['median'])} / {_f(eh and eh['median'])} ({_f(accuracy, 2)}) | "
            f"{r['memorized_frames']}/{r['n_frames']['synthetic']} (thr {_f(r['memorization']['threshold'])}) | "
            f"{_f(mia.get('auc'))} / {_f(mia.get('tpr_at_1pct_fpr'))} | {_f(rate)} | "
            f"{', '.join(failed) or '-'} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="Seconds per training session.")
    parser.add_argument("--steps", type=int, default=400, help="Training steps of the honest model.")
    parser.add_argument("--overfit-steps", type=int, default=800, help="Training steps of the overfitted model.")
    parser.add_argument("--sequences", type=int, default=6, help="Sequences per sampled corpus.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads.")
    parser.add_argument("--filter-threshold", default="0.035",
                        help="Rejection-filter threshold for the filtered overfit corpus: 'auto' or an RMS distance.")
    parser.add_argument("--workdir", type=Path, default=None, help="Keep sessions, models and corpora here.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Audit config override, repeatable.")
    args = parser.parse_args(argv)
    logging.getLogger("emosync").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory() if args.workdir is None else None
    work = Path(tmp.name) if tmp else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    tic = time.perf_counter()

    def session(name: str, seed: int, identity: int, duration: float) -> Path:
        path = work / f"{name}.h5"
        return path if path.is_file() else write_session(path, seed=seed, identity=identity, duration_s=duration)

    train_sessions = [session(f"train-id{i}", 10 + i, i, args.duration) for i in (3, 5, 9)]
    same_subjects = [session(f"holdout-id{i}", 100 + i, i, args.duration / 2) for i in (3, 5, 9)]
    other_subjects = [session(f"holdout-id{i}", 200 + i, i, args.duration / 2) for i in (7, 11)]
    timings["sessions"] = time.perf_counter() - tic

    t = time.perf_counter()
    honest = train(train_sessions, work / "model-honest", [f"optim.steps={args.steps}", f"threads={args.threads}"])
    timings["train honest"] = time.perf_counter() - t
    t = time.perf_counter()
    overfit = train(train_sessions[:1], work / "model-overfit",
                    [f"optim.steps={args.overfit_steps}", "data.max_frames=20", "data.stride=1",
                     f"threads={args.threads}"])
    timings["train overfit"] = time.perf_counter() - t

    t = time.perf_counter()
    corpora = {"honest": sample_corpus(honest, work / "corpus-honest", n_sequences=args.sequences, seed=1),
               "overfit": sample_corpus(overfit, work / "corpus-overfit", n_sequences=args.sequences, seed=1)}
    timings["sampling (2 corpora)"] = time.perf_counter() - t
    t = time.perf_counter()
    threshold = args.filter_threshold if args.filter_threshold == "auto" else float(args.filter_threshold)
    corpora["overfit-filtered"] = sample_corpus(overfit, work / f"corpus-overfit-filtered-{threshold}",
                                                n_sequences=args.sequences, seed=1, reject=threshold)
    timings["sampling with the filter"] = time.perf_counter() - t

    # Calibration corpora against the honest model: copies must fail, held-out real frames must pass.
    from synth.generative import load_face_frames, training_frame_selection
    from synth.privacy.corpus_frames import write_reference_corpus

    size = training_frame_selection(honest)["image_size"]
    if not (work / "corpus-copies" / "corpus.json").is_file():
        tr = load_face_frames(train_sessions, size, stride=2)
        pick = np.linspace(0, len(tr) - 1, 128).round().astype(int)
        noisy = np.clip(tr.rgbd[pick] + np.random.default_rng(0).normal(0, 0.003, tr.rgbd[pick].shape), -1, 1)
        write_reference_corpus(work / "corpus-copies", noisy.astype(np.float32), tr.aus[pick], model_dir=honest,
                               note="copies of training frames + N(0, 0.003) noise")
    if not (work / "corpus-real" / "corpus.json").is_file():
        ho = load_face_frames(same_subjects, size, stride=1)
        pick = np.linspace(0, len(ho) - 1, 128).round().astype(int)
        write_reference_corpus(work / "corpus-real", ho.rgbd[pick], ho.aus[pick], model_dir=honest,
                               note="held-out real frames of the training subjects")

    cfg = [f"threads={args.threads}", *args.overrides]
    lines = ["| corpus | baseline (held-out) | audit | pixel p01 syn / held-out | pixel median syn / held-out | "
             "identity-emb median syn / held-out (encoder held-back acc.) | memorized | MIA AUC / TPR@1%FPR | "
             "rejection rate | failed checks |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    same_label, other_label = "other sessions of the training subjects", "other subjects (faces 7, 11)"
    t = time.perf_counter()
    for case, model, corpus, model_train, baselines in (
            ("honest model, sampled", honest, corpora["honest"], train_sessions,
             ((same_label, same_subjects), (other_label, other_subjects))),
            ("overfit model (20 frames of face 3), sampled", overfit, corpora["overfit"], train_sessions[:1],
             ((same_label, same_subjects[:1]), (other_label, other_subjects))),
            (f"overfit model, sampled with the NN filter (threshold {threshold})", overfit, corpora["overfit-filtered"],
             train_sessions[:1], ((same_label, same_subjects[:1]),)),
            ("copies of training frames (+N(0, 0.003) noise)", honest, work / "corpus-copies", train_sessions,
             ((same_label, same_subjects),)),
            ("held-out real frames of the training subjects", honest, work / "corpus-real", train_sessions,
             ((same_label, same_subjects),))):
        for baseline, holdout in baselines:
            r = audit(model, corpus, model_train, holdout, cfg)
            lines.append(row(case, baseline, r, r["rejection_rate"]))
    timings["audits (7)"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - tic

    out = [f"Command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:] if argv is None else argv)}",
           f"torch threads: {args.threads}; sessions {args.duration:g} s (training), {args.duration / 2:g} s "
           "(held-out); image size 32 px; tiny-diffusion", "", *lines, "",
           "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items())]
    sys.stdout.write("\n".join(out) + "\n")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
