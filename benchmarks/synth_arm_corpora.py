"""One corpus per usefulness arm whose expressions come only from that arm's real subjects (issue 15, item 5).

``benchmarks/synth_usefulness.py`` draws ``n`` real training subjects per seed. A corpus from a generator
trained on all training subjects carries what the other subjects showed as well, which favours synthesis
in the small arms. With a learned AU motion model (``emosync synth fit-motion``) expression and identity
come from two separate parts, so the part that teaches expression can be made per arm: for every seed
and ``n``, this copies ``--model`` (a diffusion model with an identity input), refits its AU motion model
on the frames of exactly the subjects that synth_usefulness draws for that seed and ``n``, and samples a
corpus from the copy with the given ``synth sample`` options. The neutral faces still come from the
model's denoiser (trained on all ``--train`` subjects; identity only, every AU at 0), and every arm's
corpus uses the same identities and seeds, so corpora differ only in the motion model.

``--train-steps N`` goes all the way: each arm's whole generator (denoiser, identity prior and motion
model) is trained from scratch on that arm's subjects alone, with ``--model``'s config and ``N`` steps,
so no other subject's data is anywhere in the generator that makes the arm's corpus. An interrupted
training resumes from its newest checkpoint when the script is run again. An identity prior fitted on
4 subjects has room for fewer distinct new people than one fitted on 20 (``synth sample`` says how
many it found; 6 at the 2026-12-07 settings), so ask for fewer ``--new-identities``::

    python benchmarks/synth_arm_corpora.py --model m2000 --train sessions/*.h5 --subjects 4 --seeds 3 \
        --train-steps 2000 --out arms -- --emotion happiness,surprise,anger,sadness --kind micro --n 64 \
        --frames 45 --new-identities 6 --seed 11

Run, then score each arm's corpus on its own seed::

    python benchmarks/synth_arm_corpora.py --model m2000 --train sessions/*.h5 --subjects 4 --seeds 10 \\
        --out arms -- --emotion happiness,surprise,anger,sadness --kind micro --n 64 --frames 45 \\
        --new-identities 12 --seed 11
    for s in 0 1 2 3 4 5 6 7 8 9; do python benchmarks/synth_usefulness.py --task recognition \\
        --train sessions/*.h5 --heldout heldout12/*.h5 --corpus arms/n4-seed$s/corpus --subjects 4 \\
        --ratios 0.25,0.5 --seeds 1 --first-seed $s --threads 1 --log arms.jsonl; done
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import numpy as np
import yaml

from synth.generative import load_generator
from synth.generative.base import read_model_card, training_frame_selection
from synth.generative.frames import load_face_frames
from synth.generative.motion import AUMotionModel
from synth.scoring.reference import session_subject


def arm_subjects(train_subjects: list[str], seed: int, n: int) -> list[str]:
    """The subjects ``synth_usefulness.py`` draws for ``seed`` and ``n`` (the same generator call)."""
    return sorted(map(str, np.random.default_rng(seed).choice(sorted(train_subjects), size=min(n, len(train_subjects)),
                                                              replace=False)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="Diffusion model folder (identity input).")
    parser.add_argument("--train", nargs="+", required=True, help="The sessions synth_usefulness draws from.")
    parser.add_argument("--subjects", default="4", help="Real subjects per arm, comma-separated.")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="Folder of arms (<out>/n<N>-seed<S>/model, corpus).")
    parser.add_argument("--train-steps", type=int, default=0,
                        help="Train each arm's generator from scratch on its subjects (this many steps, --model's "
                             "config) instead of refitting only the motion model of --model.")
    parser.add_argument("sample_args", nargs=argparse.REMAINDER, help="-- then `emosync synth sample` options.")
    args = parser.parse_args()
    sample_args = [a for a in args.sample_args if a != "--"]
    subject_of = {Path(f): session_subject(f) for f in args.train}
    generator_card = read_model_card(args.model)
    stride = int(training_frame_selection(args.model).get("stride") or 1)
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for n in (int(x) for x in args.subjects.split(",")):
            chosen = arm_subjects(sorted(set(subject_of.values())), seed, n)
            arm_files = sorted(f for f, s in subject_of.items() if s in chosen)
            arm = args.out / f"n{n}-seed{seed}"
            model, corpus = arm / "model", arm / "corpus"
            if args.train_steps and not (model / "config.json").is_file():
                generator_config = arm / "generator.yaml"
                arm.mkdir(parents=True, exist_ok=True)
                generator_config.write_text(yaml.safe_dump(generator_card["config"]))
                subprocess.run(["emosync", "synth", "train", *map(str, arm_files),
                                "--config", str(generator_config), "--set", f"optim.steps={args.train_steps}",
                                "--out", str(model), "--no-progress",
                                *(["--resume"] if (model / "checkpoints").is_dir() else [])], check=True)
            elif not (model / "config.json").is_file():   # rerun-safe: a finished arm is kept
                shutil.copytree(args.model, model, ignore=shutil.ignore_patterns("checkpoints", "samples"),
                                dirs_exist_ok=True)
                gen = load_generator(model)
                frames = load_face_frames(arm_files, gen.image_size, stride=stride)
                gen.add_motion(AUMotionModel.fit(frames, gen.config.motion))
                gen.save_pretrained(model)
            if not (corpus / "corpus.json").is_file():
                subprocess.run(["emosync", "synth", "sample", str(model), *sample_args, "--out", str(corpus),
                                "--no-progress"], check=True)
            print(f"seed {seed}, {n} subjects {chosen}: {corpus}", flush=True)


if __name__ == "__main__":
    main()
