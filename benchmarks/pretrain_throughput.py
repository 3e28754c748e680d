"""What bounds pretraining on this machine: the data loader alone vs loader + model, in one run.

Writes short simulated light-rig sessions, builds the dataset and model of a pretraining config
(``default`` unless told), then times (1) the ``DataLoader`` alone over ``--batches`` batches and
(2) the same loader feeding augmentation + forward + backward + AdamW steps (``fusion.train.training_step``),
with the config's workers and batch size. A ratio loader/training near 1 means reading and
decoding windows bounds training; a large ratio means the model does. Prints a markdown table.

Run: python benchmarks/pretrain_throughput.py [--config default] [--batches 10] [--duration 30]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from fusion.augment import augment_batch
from fusion.config import load_pretrain_config
from fusion.losses import MultiViewContrastiveLoss
from fusion.train import build_model, make_dataset, training_step


def _loader(dataset, batch_size: int, workers: int, n_batches: int, seed: int) -> DataLoader:
    # Random windows as in training (a sequential pass would flatter the HDF5 chunk cache).
    sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=batch_size * n_batches,
                                             generator=torch.Generator().manual_seed(seed))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--batches", type=int, default=10, help="Timed batches per measurement (after 1 warm-up).")
    parser.add_argument("--duration", type=float, default=30.0, help="Seconds per simulated session.")
    parser.add_argument("--sessions", type=int, default=2)
    args = parser.parse_args(argv)
    logging.getLogger("emosync").setLevel(logging.WARNING)
    from synth.rig.offline import write_rig_session

    config = load_pretrain_config(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        sessions = [write_rig_session(Path(tmp) / f"s{i}.h5", duration_s=args.duration, seed=i)
                    for i in range(args.sessions)]
        dataset = make_dataset(sessions, config)
        bs, workers = min(config.optim.batch_size, len(dataset)), config.data.num_workers
        model = build_model(config, dataset)
        loss_fn = MultiViewContrastiveLoss(dataset.modalities, kind=config.loss.kind,
                                           temperature=config.loss.temperature)
        optimizer = torch.optim.AdamW(list(model.parameters()) + list(loss_fn.parameters()), lr=config.optim.lr)
        model.train()
        rates = {}
        for what in ("loader alone", "loader + model"):
            loader = iter(_loader(dataset, bs, workers, args.batches + 1, seed=len(rates)))
            batch = next(loader)  # warm-up: worker start, first HDF5 opens, allocator
            tic = time.perf_counter()
            for batch in loader:
                if what == "loader + model":
                    batch = augment_batch(batch, config.augment, config.data.window_s)  # as fusion.train does
                    loss, _ = training_step(model, loss_fn, batch)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
            rates[what] = args.batches * bs / (time.perf_counter() - tic)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"Command: `python {' '.join(sys.argv)}`\n")
    print(f"Config `{args.config}`: batch {bs}, {workers} loader workers, {config.data.clip_frames} frames x "
          f"{config.data.image_size} px, {n_params / 1e6:.2f} M parameters, torch threads {torch.get_num_threads()}, "
          f"{args.batches} timed batches each.\n")
    print("| measurement | samples/s |\n|---|---|")
    for what, rate in rates.items():
        print(f"| {what} | {rate:.1f} |")
    print(f"| ratio loader / training | {rates['loader alone'] / rates['loader + model']:.1f}x |")


if __name__ == "__main__":
    main()
