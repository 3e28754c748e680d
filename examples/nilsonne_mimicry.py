"""Facial mimicry in one real recording: EMG envelopes around angry, happy and neutral face videos.

The data are subject 09 of the FMOV experiment of Nilsonne et al.'s oxazepam study (CC0,
``../shared/data/physio/nilsonne_FMOV_09.txt``, see ``../shared/data/PROVENANCE.md``): an
Acqknowledge text export at 100 Hz with raw and average-rectified EMG of zygomaticus major
(smiling) and corrugator supercilii (frowning), and one stimulus pulse per face video
(4 angry, 4 happy, 4 neutral). The steps:

1. import the table as a session (``configs/import/nilsonne.yaml``),
2. convert it to MNE (pulses become annotations),
3. compute envelopes two ways: Acqknowledge's own average rectified EMG (smoothed by a
   0.25 s moving mean), and emosync's RMS envelope (0.25 s) of the raw EMG (at 100 Hz only
   20-45 Hz of the EMG band is left, see ``docs/mne-export.md``),
4. epoch from -2 to 6 s around each video onset, divide each epoch by its mean over the
   2 s before onset (as the authors did), and
5. plot the mean of each condition with its 95 % confidence interval.

With 4 videos per condition the intervals are wide; one subject says nothing about
mimicry in general. Run::

    python examples/nilsonne_mimicry.py --out nilsonne-out
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import mne  # noqa: E402

from acquisition import logger, open_session  # noqa: E402
from acquisition.annotate.processing import ConditionMean, condition_means, emg_envelope, normalize_to_baseline  # noqa: E402
from acquisition.io.table import import_table  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "physio" / "nilsonne_FMOV_09.txt"
CONDITIONS = {"angry": "tab:red", "happy": "tab:green", "neutral": "tab:gray"}
#: Epoch window and baseline (s), as in the authors' preprocessing (FMOV_Preprocessing.R).
TMIN, TMAX, BASELINE = -2.0, 6.0, (-2.0, 0.0)
#: Window (s after onset) summarised in the log: the authors averaged about 2-4 s.
RESPONSE_WINDOW = (2.0, 4.0)
#: Envelope window (s): long enough to read the curves, short against the 4 s videos.
SMOOTH_S = 0.25


def mimicry_epochs(raw: mne.io.BaseRaw) -> mne.Epochs:
    """Epochs from ``TMIN`` to ``TMAX`` s around each stimulus annotation, not baseline-corrected."""
    events, event_id = mne.events_from_annotations(raw, event_id={c: i + 1 for i, c in enumerate(CONDITIONS)},
                                                   verbose=False)
    return mne.Epochs(raw, events, event_id, tmin=TMIN, tmax=TMAX, baseline=None, preload=True,
                      reject_by_annotation=False, verbose=False)


def compute(session_path: Path) -> dict[str, dict[str, ConditionMean]]:
    """Per envelope kind: per condition mean and 95 % CI of the baseline-normalized envelopes."""
    with open_session(session_path) as session:
        raw = session.to_mne(line_freq=50.0)
    # Acqknowledge's average rectified EMG (MISC channels: already an envelope), smoothed over the same
    # window as ours: a moving mean, i.e. the "arv" envelope without filters.
    recorded = raw.copy().pick(["ZYG_RECT", "CORR_RECT"]).rename_channels({"ZYG_RECT": "zyg", "CORR_RECT": "corr"})
    recorded = emg_envelope(recorded, picks=["zyg", "corr"], band_hz=None, notch_hz=None, window_s=SMOOTH_S,
                            method="arv")
    # emosync's RMS envelope of the raw EMG; the 20-500 Hz band is clipped to 20-45 Hz at 100 Hz.
    ours = emg_envelope(raw.copy().pick(["EMG_ZYG", "EMG_CORR"]), window_s=SMOOTH_S)
    ours.rename_channels({"EMG_ZYG": "zyg", "EMG_CORR": "corr"})
    results = {}
    for kind, inst in (("recorded", recorded), ("emosync", ours)):
        epochs = normalize_to_baseline(mimicry_epochs(inst), BASELINE, picks=["zyg", "corr"])
        results[kind] = condition_means(epochs, picks=["zyg", "corr"])
    return results


def plot(results: dict[str, dict[str, ConditionMean]], fname: Path) -> Path:
    """Two muscles (rows) by two envelope kinds (columns): mean and 95 % CI per condition."""
    titles = {"recorded": f"Acqknowledge average rectified EMG, {SMOOTH_S:g} s moving mean",
              "emosync": f"emosync RMS envelope of raw EMG (20-45 Hz, {SMOOTH_S:g} s)"}
    muscles = {"zyg": "zygomaticus major (smile)", "corr": "corrugator supercilii (frown)"}
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True, layout="constrained")
    for col, (kind, means) in enumerate(results.items()):
        for row, muscle in enumerate(muscles):
            ax = axes[row, col]
            for condition, color in CONDITIONS.items():
                m = means[condition]
                i = m.ch_names.index(muscle)
                ax.plot(m.times, m.mean[i], color=color, lw=1.5, label=f"{condition} (n={m.n_epochs})")
                ax.fill_between(m.times, m.lower[i], m.upper[i], color=color, alpha=0.18, lw=0)
            ax.axhline(1.0, color="k", lw=0.6, ls=":")
            ax.axvline(0.0, color="k", lw=0.8)
            ax.axvspan(*BASELINE, color="0.92", zorder=0)
            ax.set_title(f"{muscles[muscle]}\n{titles[kind]}", fontsize=10)
            if col == 0:
                ax.set_ylabel("activation / baseline (-2 to 0 s)")
            if row == 1:
                ax.set_xlabel("time from video onset (s)")
    axes[0, 0].legend(loc="upper left", fontsize=9, frameon=False)
    fig.suptitle("Nilsonne FMOV subject 09: mean and 95 % CI over 4 videos per condition (one subject)", fontsize=11)
    fig.savefig(fname, dpi=120)
    plt.close(fig)
    return fname


def summarize(results: dict[str, dict[str, ConditionMean]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean normalized activation in ``RESPONSE_WINDOW`` per envelope kind, muscle and condition."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for kind, means in results.items():
        for condition, m in means.items():
            window = (m.times >= RESPONSE_WINDOW[0]) & (m.times <= RESPONSE_WINDOW[1])
            for i, muscle in enumerate(m.ch_names):
                out.setdefault(kind, {}).setdefault(muscle, {})[condition] = float(m.mean[i, window].mean())
    return out


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the Acqknowledge text export")
    parser.add_argument("--out", type=Path, default=Path("nilsonne-out"), help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    session = args.out / f"{args.data.stem}.h5"
    if not session.exists():
        import_table(args.data, session, "nilsonne", subject_id="sub-09")
    results = compute(session)
    png = plot(results, args.out / "nilsonne_mimicry.png")
    for kind, muscles in summarize(results).items():
        for muscle, values in muscles.items():
            logger.info("%s %s, mean %g-%g s after onset (x baseline): %s", kind, muscle, *RESPONSE_WINDOW,
                        ", ".join(f"{c} {v:.2f}" for c, v in values.items()))
    logger.info("Wrote %s", png)
    return png


if __name__ == "__main__":
    main()
