"""Command-line front end of the generators: ``emosync synth train``, ``fit-motion`` and ``sample``.

A typer sub-app (``app``); ``emosync`` registers it as ``synth`` and the privacy audit adds
``audit`` to the same group from its own module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from acquisition.cli.common import RepeatableOptionsGroup, console, fail

app = typer.Typer(help="AU-conditioned synthetic expression data: train generators, sample corpora, audit them.",
                  no_args_is_help=True, cls=RepeatableOptionsGroup)


@app.command()
def train(
    sessions: list[Path] = typer.Argument(..., help="Training session files (.h5) with RGB, depth and AUs."),
    config: str = typer.Option("tiny-gan", "--config", "-c",
                               help="configs/synth name (diffusion, gan, tiny-diffusion, tiny-gan) or a .yaml path."),
    out: Path = typer.Option(..., "--out", "-o", help="Model folder to create (weights, card, checkpoints, logs)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its newest checkpoint."),
    overrides: list[str] = typer.Option([], "--set", help="Config override KEY=VALUE, repeatable."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train an AU-conditioned generator (diffusion or GAN) of RGB-D face crops.

    Example: emosync synth train s1.h5 s2.h5 --config tiny-diffusion --out models/s1
    """
    from acquisition.utils.config import ConfigError

    from synth.generative.config import load_synth_config
    from synth.generative.train import train_generator

    try:
        run_config = load_synth_config(config, overrides)
        train_generator(sessions, run_config, out, resume=resume, progress=progress)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError, KeyError) as err:
        raise fail(str(err)) from None
    console.print(f"Model in {out} (config.json, weights/); loss {out / 'loss.csv'}, samples {out / 'samples'}")


@app.command("fit-motion")
def fit_motion(
    model: Path = typer.Argument(..., help="A trained diffusion model folder (emosync synth train --out)."),
    overrides: list[str] = typer.Option([], "--set", help="Motion-model override KEY=VALUE (e.g. ridge=0.02), "
                                                         "repeatable; keys of model.motion in configs/synth."),
) -> None:
    """Learn what each AU does to a face (flow + residual) from the model's training frames and add it to the model.

    Sampling then draws one neutral face per sequence and animates it with the requested AUs
    (docs/synthesis.md). Example: emosync synth fit-motion models/m1
    """
    from acquisition.utils.config import ConfigError, validate_with_overrides

    from synth.generative.base import read_model_card
    from synth.generative.config import MotionConfig
    from synth.generative.motion import add_motion_model

    try:
        card = read_model_card(model)
        saved = (card.get("config", {}).get("model", {}) or {}).get("motion", {})
        config = validate_with_overrides(MotionConfig, saved, overrides, source=f"motion settings of {model}")
        motion = add_motion_model(model, config)
    except (ConfigError, FileNotFoundError, ValueError, KeyError) as err:
        raise fail(str(err)) from None
    console.print(f"AU motion model in {model / 'weights'}: AUs {motion.modelled_aus}; explains "
                  f"{motion.fitted['explained_variance']:.0%} of the training frames' change from neutral")


def _reject_filters(model: Path, reject_closer_than: str, reject_identities_closer_than: str):
    """The filters of ``--reject-closer-than`` and ``--reject-identities-closer-than`` (None where off).

    Both measure against the model's training frames, which are loaded once for the two.
    """
    thresholds = {}
    for option, value in (("--reject-closer-than", reject_closer_than),
                          ("--reject-identities-closer-than", reject_identities_closer_than)):
        try:
            thresholds[option] = value if value in ("off", "auto") else float(value)
        except ValueError:
            raise ValueError(f"{option} must be auto, off or a distance, got {value!r}.") from None
    if all(t == "off" for t in thresholds.values()):
        return None, None
    from synth.generative.base import load_training_frames
    from synth.privacy.rejection import NearestNeighbourFilter

    frames = load_training_frames(model)
    return tuple(None if thresholds[option] == "off" else
                 NearestNeighbourFilter.from_model_dir(model, thresholds[option], scope=scope, frames=frames)
                 for option, scope in (("--reject-closer-than", "moment"),
                                       ("--reject-identities-closer-than", "subject")))


@app.command()
def sample(
    model: Path = typer.Argument(..., help="A trained model folder (emosync synth train --out)."),
    out: Path = typer.Option(..., "--out", "-o", help="Corpus folder (corpus.json + sessions/)."),
    emotion: Optional[str] = typer.Option(None, help="Emotion(s), comma-separated, cycled over the sequences: "
                                                     "happiness, sadness, surprise, fear, anger, disgust, contempt."),
    kind: str = typer.Option("micro", help="micro (0.2-0.5 s) or macro (0.6-4 s) (synth.facs.TimelineConfig)."),
    n: int = typer.Option(1, "--n", help="Number of sequences."),
    seed: Optional[int] = typer.Option(
        None, help="Seed of the first attempt; attempt k uses seed + k and rejected attempts use up seeds. "
                   "Default: 0, or with --append the seed after the last one used (seeds in the corpus are refused)."),
    fps: float = typer.Option(30.0, help="Frame rate (e.g. 30 or 200)."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Frames per sequence, the expression centred in them "
                                        "(default: the expression and 0.1 s of neutral face on either side)."),
    au_timeline: Optional[Path] = typer.Option(None, "--au-timeline",
                                               help="CSV with time_s and AU columns (AU12...) instead of --emotion."),
    append: bool = typer.Option(False, "--append", help="Add sequences (new ids) to an existing corpus."),
    emg: bool = typer.Option(False, "--emg", help="Add paired EMG from the simulator's muscle model."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Diffusion sampler steps (default: the model's)."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="Diffusion sampler: ddim or dpm++ (DPM-Solver++; "
                                                                  "default: the model's). Recorded per sequence."),
    expression: Optional[str] = typer.Option(
        None, "--expression",
        help="How a diffusion model renders the AUs: motion (its learned AU motion model animates one sampled "
             "neutral face; default when the model has one, see synth fit-motion) or diffusion (the denoiser, "
             "frame by frame). Recorded per sequence."),
    guidance: Optional[float] = typer.Option(
        None, "--guidance",
        help="Expression guidance of diffusion models: g > 1 strengthens what the requested AUs change against "
             "a neutral face (2x sampling time; default: off). docs/synthesis.md says how it was chosen."),
    reject_closer_than: str = typer.Option(
        "off", "--reject-closer-than",
        help="Drop sequences with a frame closer than this RMS pixel distance to a training frame: a number, "
             "auto (calibrated on the training frames; synth.privacy) or off."),
    reject_identities_closer_than: str = typer.Option(
        "off", "--reject-identities-closer-than",
        help="With --new-identities: redraw a new identity whose rendered neutral faces come closer than this RMS "
             "pixel distance to a training frame, and drop sequences with a frame that close: a number, auto (as "
             "close as only 5 % of real people come to another training subject; synth.privacy) or off."),
    new_identities: Optional[int] = typer.Option(
        None, "--new-identities",
        help="Spread the sequences over this many NEW people drawn from the model's identity prior (seeded by "
             "--seed; needs a model trained with model.identity.enabled). Default: identity 'none'."),
    identities_from_training: bool = typer.Option(
        False, "--identities-from-training",
        help="LEAKING control for the privacy audit: condition on the training subjects' own identities "
             "('train:<subject_id>'). For tests and benchmarks only; never train on such a corpus."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Generate synthetic expression sequences, one session each, into a corpus folder.

    Example: emosync synth sample models/m1 --emotion happiness,surprise --kind micro --n 500 --new-identities 50
    --seed 3 --out corpora/c1
    """
    from synth.facs import read_au_timeline_csv

    from synth.generative.corpus import sample_corpus

    try:
        timeline = read_au_timeline_csv(au_timeline) if au_timeline is not None else None
        if timeline is not None and emotion:
            raise ValueError("Give either --emotion or --au-timeline, not both.")
        emotions = [e.strip() for e in emotion.split(",") if e.strip()] if emotion else []
        reject, identity_filter = _reject_filters(model, reject_closer_than, reject_identities_closer_than)
        corpus = sample_corpus(model, out, n=n, seed=seed, emotions=emotions, kind=kind, au_timeline=timeline,
                               fps=fps, n_frames=frames, append=append, reject=reject, emg=emg,
                               num_inference_steps=steps, progress=progress, new_identities=new_identities,
                               identities_from_training=identities_from_training, guidance_scale=guidance,
                               sampler=sampler, expression=expression, identity_filter=identity_filter)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError, RuntimeError) as err:
        raise fail(str(err)) from None
    rejection = corpus["rejection"]
    extra = f"; rejection rate {rejection['rate']:.1%}" if rejection else ""
    identities = corpus.get("identities") or {"kind": "none", "n": 0}
    if identities["kind"] != "none":
        extra += f"; {identities['n']} {identities['kind']} identities"
    if identities.get("face_filter"):
        extra += (f" ({identities['face_filter']['rejected']} candidate(s) redrawn: a neutral face closer than "
                  f"{identities['face_filter']['threshold']:.4g} to a training frame)")
    console.print(f"{len(corpus['sequences'])} sequence(s) in {out / 'corpus.json'}{extra}")
