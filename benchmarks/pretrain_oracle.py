"""How much could EEG or EMG be matched to a perfect view of the face? A reference for retrieval.

On the sessions of ``pretrain_ablation.py`` (the protocol's first training subjects, held out: its
first tuning subjects, ``configs/pretrain/evaluation.yaml``; a reference, i.e. a design aid), each
1 s window is described by the *true* AU time course (the rig's ActionUnits stream, 17 AUs x
``--bins`` time bins: what a perfect video encoder could extract) and by log band power of the
signal (EEG: 1-8 Hz for blinks and 20-100 Hz for muscle artefacts; EMG: 20-500 Hz; per channel,
same bins). A ridge decoder (penalty by cross-validation) maps band power to the AU course on
the training faces; on each held-out face, every window's decoded course retrieves the true
courses (cosine of standardised courses). R@1 / chance says how much the signal tells about
*this* moment of the face. It is a reference, not a strict bound: a non-linear decoder could
do better, and a learned video encoder sees far less than the true AU course. A second row per
signal leaves AU45 out of the course: the rig renders blinks in RGB only (eyelids change no
depth), so that row is what a perfect *depth* encoder could be matched on.

Run: python benchmarks/pretrain_oracle.py --workdir /tmp/ablation    (the sessions are written there if missing)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import signal

from acquisition.session.reader import open_session
from fusion.evaluate import retrieval, ridge_fit_predict
from fusion.evaluate import load_evaluation_protocol
from pretrain_ablation import sessions
from acquisition.annotate.action_units import AU_IDS, AU_INDEX

#: Signal -> frequency bands (Hz) whose power is the signal's description of a window.
BANDS = {"EEG": [(1.0, 8.0), (20.0, 100.0)], "EMG": [(20.0, 500.0)]}


def window_features(fname: Path, n_bins: int) -> dict[str, np.ndarray]:
    """Per 1 s window: ``"AU"`` (n, 17 * n_bins) true AU course and ``"EEG"``/``"EMG"`` log band power."""
    streams = {s.info.get("type"): s for s in open_session(fname).streams.values()}
    t_au, au = streams["ActionUnits"].times, np.asarray(streams["ActionUnits"].data, dtype=float)
    envelopes = {}
    for kind, bands in BANDS.items():
        stream = streams[kind]
        x = np.asarray(stream.data, dtype=float)
        x = (x - x.mean(0)) / (x.std(0) + 1e-12)
        fs = stream.nominal_srate
        power = [signal.sosfiltfilt(signal.butter(4, [lo, min(hi, 0.45 * fs)], btype="band", fs=fs, output="sos"),
                                    x, axis=0) ** 2 for lo, hi in bands]
        envelopes[kind] = (stream.times, np.concatenate(power, axis=1))
    start = max(t_au[0], *(t[0] for t, _ in envelopes.values()))
    stop = min(t_au[-1], *(t[-1] for t, _ in envelopes.values()))
    out: dict[str, list] = {"AU": [], **{k: [] for k in envelopes}}
    for w0 in np.arange(start, stop - 1.0, 1.0):
        edges = w0 + np.linspace(0.0, 1.0, n_bins + 1)
        bins = list(zip(edges[:-1], edges[1:], strict=True))
        out["AU"].append(np.stack([au[(t_au >= a) & (t_au < b)].mean(0) for a, b in bins]).ravel())
        for kind, (t, env) in envelopes.items():
            out[kind].append(np.log(np.stack([env[(t >= a) & (t < b)].mean(0) for a, b in bins]) + 1e-6).ravel())
    return {k: np.asarray(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--protocol", default="evaluation", help="configs/pretrain protocol name or a .yaml path.")
    parser.add_argument("--protocol-set", dest="protocol_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Protocol override, repeatable (e.g. duration_s=30).")
    parser.add_argument("--bins", type=int, default=8, help="Time bins per 1 s window.")
    parser.add_argument("--train-faces", type=int, default=4, help="The first N training subjects of the protocol.")
    parser.add_argument("--tuning-faces", type=int, default=2, help="The first N tuning subjects (held out).")
    args = parser.parse_args(argv)
    protocol = load_evaluation_protocol(args.protocol, args.protocol_overrides)
    train_files, held_files = sessions(args.workdir, protocol, args.train_faces, args.tuning_faces)
    train = [window_features(f, args.bins) for f in train_files]
    held = [window_features(f, args.bins) for f in held_files]
    no_blink = np.array([a != AU_INDEX[45] for _ in range(args.bins) for a in range(len(AU_IDS))])
    print(f"Command: `python {' '.join(sys.argv)}`\n")
    print("| signal -> true AU course | R@1 / chance per held-out face | R@5 / (5/N) |\n|---|---|---|")
    for kind in BANDS:
        signal_train = np.concatenate([t[kind] for t in train])
        for target, columns in (("all AUs", slice(None)), ("without AU45 (what depth shows)", no_blink)):
            au_train = np.concatenate([w["AU"][:, columns] for w in train])
            mean, std = au_train.mean(0), au_train.std(0) + 1e-6
            r1, r5 = [], []
            for w in held:
                pred = ridge_fit_predict(signal_train, au_train, w[kind],
                                         alphas=(1.0, 10.0, 100.0, 1e3, 1e4))
                a, b = (pred - mean) / std, (w["AU"][:, columns] - mean) / std
                r = retrieval(a / np.linalg.norm(a, axis=1, keepdims=True),
                              b / np.linalg.norm(b, axis=1, keepdims=True))
                r1.append(r["R@1"] / r["chance"])
                r5.append(r["R@5"] / (5 * r["chance"]))
            print(f"| {kind}, {target} | {' / '.join(f'{x:.1f}' for x in r1)} | "
                  f"{' / '.join(f'{x:.1f}' for x in r5)} |")


if __name__ == "__main__":
    main()
