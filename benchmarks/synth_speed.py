"""Generator speed: sampling (sequences/s, 16 frames, 25 steps) and training (steps/s), diffusion vs GAN.

Weights are freshly initialized (speed does not depend on training); architectures come from
the named configs (``configs/synth/*.yaml``), image sizes from ``--sizes``. Sampling times one
16-frame sequence (the diffusion UNet runs 25 DDIM steps over a batch of 16 frames; the GAN one
forward pass; ``--sampler-steps N`` times N diffusion steps and scales to 25, for CPU runs of the
large config); training times ``--train-steps`` optimizer steps on random frames at the
config's batch size (``--batch`` overrides).

``python benchmarks/synth_speed.py --threads 1 --sizes 64 112 --configs diffusion gan tiny-diffusion tiny-gan``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def _frames(n: int, size: int):
    from synth.generative.frames import FaceFrames

    rng = np.random.default_rng(0)
    return FaceFrames(rng.uniform(-1, 1, (n, 4, size, size)).astype(np.float32),
                      rng.uniform(0, 5, (n, 17)).astype(np.float32), np.array(["s"] * n), np.array(["f"] * n),
                      np.zeros(n))


def bench(config_name: str, size: int, *, train_steps: int, repeats: int, batch: int | None,
          sampler_steps: int = 25) -> dict:
    from synth.generative.config import load_synth_config
    from synth.generative.train import _Trainer

    overrides = [f"data.image_size={size}"] + ([f"optim.batch_size={batch}"] if batch else [])
    config = load_synth_config(config_name, overrides)
    trainer = _Trainer(config, _frames(256, size), None, torch.device("cpu"))
    gen = trainer.gen
    aus = np.zeros((16, 17), np.float32)
    aus[:, 8] = np.linspace(0, 4, 16)
    gen.sample(aus[:2], seed=0, num_inference_steps=2)  # warm-up
    started = time.perf_counter()
    for r in range(repeats):
        gen.sample(aus, seed=r, num_inference_steps=sampler_steps if config.kind == "diffusion" else 25)
    sample_s = (time.perf_counter() - started) / repeats
    if config.kind == "diffusion":  # sampling cost is linear in the number of UNet evaluations
        sample_s *= 25 / sampler_steps
    trainer.train_step()  # warm-up
    started = time.perf_counter()
    for _ in range(train_steps):
        trainer.train_step()
    step_s = (time.perf_counter() - started) / train_steps
    n_params = sum(p.numel() for m in gen.modules().values() for p in m.parameters())
    return {"config": config_name, "kind": config.kind, "image_size": size, "params_M": round(n_params / 1e6, 3),
            "timed_sampler_steps": sampler_steps if config.kind == "diffusion" else None,
            "sequences_per_s": round(1.0 / sample_s, 4), "s_per_sequence": round(sample_s, 3),
            "train_batch": config.optim.batch_size, "train_steps_per_s": round(1.0 / step_s, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["diffusion", "gan", "tiny-diffusion", "tiny-gan"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 112])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--batch", type=int, default=None, help="Training batch size (default: the config's).")
    parser.add_argument("--sampler-steps", type=int, default=25,
                        help="Diffusion steps actually timed; the time is scaled to 25 steps (for slow CPU runs).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.configs:
        for size in args.sizes:
            try:
                row = bench(name, size, train_steps=args.train_steps, repeats=args.repeats, batch=args.batch,
                            sampler_steps=args.sampler_steps)
            except ValueError as err:  # e.g. a UNet depth that does not divide the size
                row = {"config": name, "image_size": size, "error": str(err).splitlines()[-1]}
            rows.append(row)
            print(json.dumps(row), flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
