"""AU fidelity (diffusion vs GAN) and usefulness (train-on-real vs real+synthetic) of the generators.

1. Simulated data: ``--train-sessions`` light-rig sessions of one identity (``identity_seed=0``)
   train both generators (tiny configs, ``--gan-steps`` / ``--diffusion-steps``); sessions of other
   identities (``--heldout-identities``) are held out.
2. A disclosed AU regressor (a 4-layer CNN on 32 px RGB-D crops -> 17 AUs, MSE, ``--regressor-steps``)
   is trained on the training sessions' real frames. Its accuracy on a held-out session of the
   training identity (other seed, so other expressions) is the reference for fidelity; on the
   held-out identities it is the real-only baseline of step 4.
3. AU fidelity: for every emotion x {micro, macro} x ``--seeds`` seeds, the generator renders the
   requested AU curve (:func:`synth.generative.corpus.emotion_request`, 30 fps); the regressor
   measures the AUs of the generated frames. Reported: per-AU Pearson correlation and MAE between
   requested and measured curves (pooled over all frames, AUs the requests move), and the timing
   error of onset / apex / offset, each located by the same rule on the requested and on the
   measured activation (sum of the expression's AUs, minus its first frame): onset and offset are
   the first and last frames at >= 20 % of the peak, apex the peak.
4. Usefulness: the same regressor architecture trained on real frames only vs real + synthetic
   frames (random emotion sequences from each generator, labelled with their requested AUs),
   evaluated on the held-out identities (subject-disjoint): MAE and mean per-AU correlation.

``python benchmarks/synth_fidelity.py --workdir /tmp/synth_fid --threads 1``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

RIG = ["timeline.expressions_per_minute=60", "timeline.micro_fraction=0.4"]


class AURegressor(nn.Module):
    """Four strided convolutions and a linear head: (n, 4, 32, 32) in [-1, 1] -> (n, 17) AUs (0-5 once clipped)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        layers, c_in = [], 4
        for c_out in (width, width, 2 * width, 2 * width):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU()]
            c_in = c_out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c_in, 17)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A linear head (clipped to 0-5 only at prediction): a sigmoid output collapsed to 0 in trials.
        return self.head(self.features(x))


def train_regressor(rgbd: np.ndarray, aus: np.ndarray, steps: int, seed: int = 0) -> AURegressor:
    torch.manual_seed(seed)
    model = AURegressor()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    x, y = torch.from_numpy(rgbd), torch.from_numpy(aus)
    for _ in range(steps):
        idx = torch.from_numpy(rng.choice(len(x), 64))
        loss = (model(x[idx]) - y[idx]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def predict(model: AURegressor, rgbd: np.ndarray) -> np.ndarray:
    return torch.cat([model(torch.from_numpy(rgbd[i:i + 512])) for i in range(0, len(rgbd), 512)]).clamp(0, 5).numpy()


def au_scores(true: np.ndarray, pred: np.ndarray) -> dict:
    """Per-AU Pearson r and MAE over AUs whose requested/true curve varies; plus their means."""
    from acquisition.annotate.action_units import AU_IDS

    per = {}
    for j, au in enumerate(AU_IDS):
        if true[:, j].std() < 1e-3:
            continue
        r = float(np.corrcoef(true[:, j], pred[:, j])[0, 1]) if pred[:, j].std() > 1e-6 else 0.0
        per[f"AU{au:02d}"] = {"r": round(r, 3), "mae": round(float(np.abs(true[:, j] - pred[:, j]).mean()), 3)}
    return {"mean_r": round(float(np.mean([v["r"] for v in per.values()])), 3),
            "mean_mae": round(float(np.mean([v["mae"] for v in per.values()])), 3), "per_au": per}


def phases(curve: np.ndarray) -> tuple[int, int, int] | None:
    """(onset, apex, offset) frame indices: first/last frame >= 20 % of the peak, and the peak."""
    curve = curve - curve[0]
    peak = curve.max()
    if peak <= 1e-6:
        return None
    above = np.flatnonzero(curve >= 0.2 * peak)
    return int(above[0]), int(np.argmax(curve)), int(above[-1])


def fidelity(gen, regressor: AURegressor, *, seeds: int, fps: float = 30.0) -> dict:
    from acquisition.annotate.action_units import AU_INDEX, EMOTIONS
    from synth.generative.corpus import emotion_request

    requested, measured, timing = [], [], {"onset": [], "apex": [], "offset": []}
    missed = 0
    started = time.perf_counter()
    for emotion in EMOTIONS:
        for kind in ("micro", "macro"):
            for seed in range(seeds):
                req = emotion_request(emotion, kind, seed=1000 + seed, fps=fps)
                frames = gen.sample(req.aus, seed=seed)
                meas = predict(regressor, frames)
                requested.append(req.aus)
                measured.append(meas)
                cols = [AU_INDEX[a] for a in req.timeline.expressions[0].peak]
                want, got = phases(req.aus[:, cols].sum(1)), phases(meas[:, cols].sum(1))
                if got is None:
                    missed += 1
                    continue
                for name, a, b in zip(("onset", "apex", "offset"), want, got):
                    timing[name].append(abs(a - b) / fps * 1000.0)
    elapsed = time.perf_counter() - started
    scores = au_scores(np.concatenate(requested), np.concatenate(measured))
    scores["timing_error_ms"] = {k: {"mean": round(float(np.mean(v)), 1), "median": round(float(np.median(v)), 1)}
                                 for k, v in timing.items()}
    scores["sequences"] = len(requested)
    scores["no_response"] = missed
    scores["sampling_s"] = round(elapsed, 1)
    return scores


def synthetic_set(gen, n_frames: int, seed: int = 50_000) -> tuple[np.ndarray, np.ndarray]:
    from acquisition.annotate.action_units import EMOTIONS
    from synth.generative.corpus import emotion_request

    xs, ys, k = [], [], 0
    while sum(len(y) for y in ys) < n_frames:
        emotion = EMOTIONS[k % len(EMOTIONS)]
        req = emotion_request(emotion, "micro" if k % 2 else "macro", seed=seed + k)
        xs.append(gen.sample(req.aus, seed=seed + k))
        ys.append(req.aus)
        k += 1
    return np.concatenate(xs)[:n_frames], np.concatenate(ys)[:n_frames]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-sessions", type=int, default=3)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--heldout-identities", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--gan-steps", type=int, default=1500)
    parser.add_argument("--diffusion-steps", type=int, default=600)
    parser.add_argument("--regressor-steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--synthetic-frames", type=int, default=1500)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from acquisition.utils.model_folder import is_model_folder
    from synth.generative import load_face_frames, load_generator
    from synth.generative.config import load_synth_config
    from synth.generative.train import train_generator
    from synth.rig.offline import write_rig_session

    work = args.workdir
    (work / "sessions").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train, held = [], []
    for i in range(args.train_sessions):
        path = work / "sessions" / f"train{i}.h5"
        if not path.exists():
            write_rig_session(path, duration_s=args.duration, seed=100 + i, overrides=RIG + ["identity_seed=0"],
                              modalities=("rgb", "depth", "au"))
        train.append(path)
    same = work / "sessions" / "held-same-identity.h5"
    if not same.exists():
        write_rig_session(same, duration_s=args.duration, seed=300, overrides=RIG + ["identity_seed=0"],
                          modalities=("rgb", "depth", "au"))
    for ident in args.heldout_identities:
        path = work / "sessions" / f"held{ident}.h5"
        if not path.exists():
            write_rig_session(path, duration_s=args.duration, seed=200 + ident,
                              overrides=RIG + [f"identity_seed={ident}"], modalities=("rgb", "depth", "au"))
        held.append(path)
    result: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    models = {}
    for kind, steps in (("gan", args.gan_steps), ("diffusion", args.diffusion_steps)):
        out = work / f"model-{kind}-{steps}"
        if not is_model_folder(out):
            started = time.perf_counter()
            config = load_synth_config(f"tiny-{kind}", [f"optim.steps={steps}", f"threads={args.threads}",
                                                        "data.stride=1"])
            train_generator(train, config, out, progress=False)
            result[f"{kind}_train_s"] = round(time.perf_counter() - started, 1)
        models[kind] = load_generator(out)
    real_train = load_face_frames(train, 32)
    real_held = load_face_frames(held, 32)
    result["n_frames"] = {"train": len(real_train), "heldout": len(real_held)}
    regressor = train_regressor(real_train.rgbd, real_train.aus, args.regressor_steps)
    result["regressor_on_heldout_real"] = au_scores(real_held.aus, predict(regressor, real_held.rgbd))
    result["regressor_on_train_real"] = {k: v for k, v in au_scores(real_train.aus, predict(
        regressor, real_train.rgbd)).items() if k != "per_au"}
    real_same = load_face_frames([same], 32)
    result["regressor_on_heldout_time_same_identity"] = au_scores(real_same.aus, predict(regressor, real_same.rgbd))
    for kind, gen in models.items():
        result[f"fidelity_{kind}"] = fidelity(gen, regressor, seeds=args.seeds)
        print(kind, json.dumps({k: v for k, v in result[f"fidelity_{kind}"].items() if k != "per_au"}),  # noqa: T201
              flush=True)
    useful = {"real_only": au_scores(real_held.aus, predict(regressor, real_held.rgbd))}
    for kind, gen in models.items():
        xs, ys = synthetic_set(gen, args.synthetic_frames)
        mixed = train_regressor(np.concatenate([real_train.rgbd, xs]), np.concatenate([real_train.aus, ys]),
                                args.regressor_steps)
        useful[f"real_plus_{kind}"] = au_scores(real_held.aus, predict(mixed, real_held.rgbd))
    result["usefulness_heldout_identities"] = {k: {kk: vv for kk, vv in v.items() if kk != "per_au"}
                                               for k, v in useful.items()}
    result["total_s"] = round(time.perf_counter() - t0, 1)
    (work / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result["usefulness_heldout_identities"]), flush=True)  # noqa: T201
    print(f"wrote {work / 'result.json'} in {result['total_s']} s", flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
