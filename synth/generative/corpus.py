"""Synthetic corpora: AU sequences -> generated RGB-D frames -> one session per sequence.

Layout of a corpus folder (the data-card generator and fusion rely on it)::

    OUT/corpus.json              {"synthetic": true, "generator": {"kind", "model_dir", "model_sha256", "config"},
                                  "seeds": [first, last], "sequences": [{"id", "file", "emotion", "kind", "seed",
                                  "n_frames", "fps", "identity", "sampler", "sampler_steps",
                                  "expression"}],
                                  "identities": {"kind", "n", "prior", "min_distance", ...},
                                  "rejection": {...} | null, "created", "emosync_version"}
    OUT/sessions/seq-00000.h5    one session per sequence, written by acquisition.SessionWriter

Each session holds ``RGB`` (RGB8 ``VideoRaw``), ``Depth`` (``DEPTH16-mm``), ``ActionUnits`` (the
17 conditioning intensities, one row per frame), ``Markers`` (``onset/<emotion>/<kind>``,
``apex/...``, ``offset/...`` as in :mod:`acquisition.session.markers`; absent for explicit AU curves,
which carry no annotation) and, on request, ``EMG`` from the simulator's muscle model
(:class:`synth.rig.signals.EMGGenerator` driven by the same AU curves). Root metadata:
``synthetic=True``, ``subject_id="synthetic"``, ``generator_kind``, ``model_sha256``, ``seed``,
``emotion``, ``expression_kind``, ``identity``.

Identities (:mod:`synth.generative.identity`). Every sequence records whose face it shows, in
``corpus.json`` and in its session's root ``identity``: ``"new-0007"`` (the 8th new identity
drawn for this corpus, one vector held over the whole sequence), ``"train:<subject_id>"``
(the deliberately leaking control, ``identities_from_training``: a training subject's own
learned embedding; for the privacy audit's negative control only) or ``"none"`` (an AU-only
model, or an identity model sampled with the null identity). Sequence ``seq-0000j`` shows
identity ``j mod n``. The top-level ``identities`` records ``kind`` (``new``, ``train`` or
``none``), ``n``, the ``prior`` (its description), ``min_distance``, the identity ``seed`` and the
vectors themselves, so ``append`` continues with the same people.

Attempt ``k`` of a run uses seed ``seed + k`` both for its AU timeline and for the generator's
noise, so ``(model, seed)`` reproduces a sequence; rejected attempts (privacy filter) use up
seeds, so kept sequence ``i`` has seed ``seed + i`` only without rejections (each sequence records
its seed). A corpus is never overwritten: sampling into a folder that holds one fails unless
``append=True``, which adds sequences with new ids (same model only), by default from the seed
after the last one used; a seed already in the corpus is refused. ``corpus.json`` is rewritten
(atomically) after every attempt, so an interrupted run leaves a consistent corpus that
``append=True`` continues.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from acquisition import SessionWriter, StreamSpec, logger
from acquisition.annotate.action_units import AU_IDS, AU_LABELS, check_emotion
from synth.facs import AUTimeline, SampledAUTimeline, TimelineConfig, \
    check_intensities, expression_timeline, frame_times

from acquisition.utils.docs import add_doc, fill_doc
from acquisition.utils.version import software_version
from synth.generative.base import load_generator, model_sha256, utc_now
from synth.generative.coverage import check_requested_aus
from synth.generative.frames import rgbd_to_images
from synth.generative.identity import NO_IDENTITY, new_identity_label, training_identity_label

add_doc("corpus_fps", """
fps : float
    Frame rate of the sequence, in Hz (any, e.g. 200).
""")
add_doc("corpus_emg", """
emg : bool
    Add an ``EMG`` stream from the simulator's muscle model, driven by the sequence's AU curves.
""")

CORPUS_FILE = "corpus.json"
SESSIONS_DIR = "sessions"
#: Neutral faces rendered per new-identity candidate by the identity face filter. The rendered face
#: depends on the noise seed as well as the identity: on the 20-subject benchmark model one render let
#: through identities whose sequences, from other seeds, came 0.01 closer than the threshold.
IDENTITY_CHECK_RENDERS = 3
#: A rejection filter: frames (n, 4, H, W) in [-1, 1] -> boolean array (n,), True = too close to training data.
RejectFilter = Callable[[np.ndarray], np.ndarray]


@dataclass
class SequenceRequest:
    """What one sequence shows: an AU timeline sampled at ``fps`` (``n_frames`` frames)."""

    timeline: AUTimeline | SampledAUTimeline
    times_s: np.ndarray
    aus: np.ndarray
    emotion: str | None
    kind: str | None
    fps: float


@fill_doc
def emotion_request(emotion: str, kind: str, *, seed: int, fps: float = 30.0, n_frames: int | None = None,
                    timeline_config: TimelineConfig | None = None) -> SequenceRequest:
    """One expression of ``emotion``/``kind`` (drawn as the rig draws them), sampled at ``fps``.

    Parameters
    ----------
    emotion : str
        One of :data:`synth.facs.EMOTION_PROTOTYPES` (e.g. ``"happiness"``).
    kind : ``"micro"`` | ``"macro"``
        Expression duration class (ranges in :class:`synth.facs.TimelineConfig`).
    seed : int
        Seed of the drawn duration, intensity and prototype variant.
    %(corpus_fps)s
    n_frames : int | None
        Number of frames, the expression centred in them; None: the expression's drawn duration
        plus 0.1 s of neutral face on either side.
    timeline_config : TimelineConfig | None
        Duration and intensity ranges; None: the defaults.

    Returns
    -------
    request : SequenceRequest
        The timeline, frame times (s, from 0) and the AU intensities at those times.
    """
    duration = None if n_frames is None else n_frames / fps
    timeline = expression_timeline(emotion, kind, seed=seed, config=timeline_config, duration_s=duration)
    times = frame_times(timeline.duration_s, fps) if n_frames is None else np.arange(n_frames) / fps
    return SequenceRequest(timeline, times, timeline.intensities(times), emotion, kind, fps)


@fill_doc
def timeline_request(timeline: SampledAUTimeline, *, fps: float = 30.0, n_frames: int | None = None
                     ) -> SequenceRequest:
    """Explicit AU curves resampled at ``fps`` from their first time.

    Parameters
    ----------
    timeline : SampledAUTimeline
        The curves (e.g. from :func:`synth.facs.read_au_timeline_csv`); time is shifted to start at 0.
    %(corpus_fps)s
    n_frames : int | None
        Keep only the first ``n_frames`` frames; None: the whole timeline.

    Returns
    -------
    request : SequenceRequest
        Frame times (s, from 0) and the interpolated AU intensities; no emotion or kind.

    Raises
    ------
    ValueError
        If ``n_frames`` exceeds the frames the timeline holds at ``fps``.
    """
    shifted = SampledAUTimeline(timeline.times_s - timeline.start_s, timeline.aus)
    times = frame_times(shifted.duration_s, fps)
    if n_frames is not None:
        if n_frames > len(times):
            raise ValueError(f"--frames {n_frames} asks for more frames than the AU timeline holds at {fps:g} fps "
                             f"({len(times)} over {shifted.duration_s:.3g} s).")
        times = times[:n_frames]
    return SequenceRequest(shifted, times, shifted.intensities(times), None, None, fps)


@fill_doc
def write_sequence(fname: str | os.PathLike, request: SequenceRequest, rgbd: np.ndarray, *,
                   metadata: dict[str, Any], emg: bool = False, seed: int = 0) -> Path:
    """Write one generated sequence as a session (see the module docstring for its streams).

    Parameters
    ----------
    fname : path-like
        The session file to create (``.h5``).
    request : SequenceRequest
        What was generated: timeline, frame times and conditioning AUs (one row per frame).
    rgbd : array, shape (n_frames, 4, H, W)
        The generated frames in [-1, 1].
    metadata : dict
        Extra root attributes (generator kind, model hash, seed, emotion...).
    %(corpus_emg)s
    seed : int
        Seed of the EMG noise.

    Returns
    -------
    fname : Path
        The written session.

    Raises
    ------
    ValueError
        If the AUs are outside 0-5 or ``rgbd`` and the AUs differ in length.
    """
    aus = check_intensities(request.aus, "conditioning AUs")
    if len(rgbd) != len(aus):
        raise ValueError(f"{len(rgbd)} frames but {len(aus)} AU rows.")
    rgb, depth = rgbd_to_images(rgbd)
    height, width = rgb.shape[1:3]
    fps, times = float(request.fps), np.asarray(request.times_s, dtype=np.float64)
    with SessionWriter(fname, subject_id="synthetic", notes="synth.generative corpus sequence",
                       metadata={"synthetic": True, **metadata}) as w:
        w.add_stream(StreamSpec("RGB", "VideoRaw", height * width * 3, "int8", fps, "synthetic-rgb",
                                frame_shape=(height, width, 3), encoding="RGB8")).append(rgb, times)
        w.add_stream(StreamSpec("Depth", "VideoRaw", height * width, "int16", fps, "synthetic-depth",
                                frame_shape=(height, width), encoding="DEPTH16-mm")).append(depth, times)
        w.add_stream(StreamSpec("ActionUnits", "ActionUnits", len(AU_IDS), "float32", fps, "synthetic-au",
                                channel_labels=AU_LABELS, channel_units=["FACS intensity 0-5"] * len(AU_IDS))
                     ).append(aus, times)
        markers = request.timeline.markers()
        if markers:
            w.add_stream(StreamSpec("Markers", "Markers", 1, "string", 0.0, "synthetic-markers",
                                    channel_labels=["expression"])
                         ).append([[text] for _, text in markers], [t for t, _ in markers])
        if emg:
            from synth.rig.config import load_rig_config
            from synth.rig.signals import EMGGenerator

            emg_config = load_rig_config("light").emg
            n = int(round((times[-1] + 1.0 / fps) * emg_config.srate_hz))
            data = EMGGenerator(emg_config, request.timeline, seed).next_samples(n)
            labels = [c.label for c in emg_config.channels]
            w.add_stream(StreamSpec("EMG", "EMG", len(labels), "float32", emg_config.srate_hz, "synthetic-emg",
                                    channel_labels=labels, channel_units=["V"] * len(labels),
                                    channel_types=["emg"] * len(labels))
                         ).append(data, np.arange(n) / emg_config.srate_hz)
    return Path(fname)


def read_corpus(out: str | os.PathLike) -> dict[str, Any]:
    """The corpus index (``corpus.json``) of a corpus folder."""
    path = Path(out) / CORPUS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{out} is not a corpus folder (no {CORPUS_FILE}).")
    return json.loads(path.read_text())


def _write_index(out: Path, corpus: dict[str, Any]) -> None:
    tmp = out / (CORPUS_FILE + ".tmp")
    tmp.write_text(json.dumps(corpus, indent=2))
    os.replace(tmp, out / CORPUS_FILE)


def _next_id(out: Path, corpus: dict[str, Any] | None) -> int:
    used = [int(s["id"].split("-")[1]) for s in (corpus or {}).get("sequences", [])]
    used += [int(p.stem.split("-")[1]) for p in (out / SESSIONS_DIR).glob("seq-*.h5") if p.stem[4:].isdigit()]
    return max(used, default=-1) + 1


@fill_doc
def sample_corpus(model_dir: str | os.PathLike, out: str | os.PathLike, *, n: int = 1, seed: int | None = None,
                  emotions: Sequence[str] = (), kind: str = "micro", au_timeline: SampledAUTimeline | None = None,
                  fps: float = 30.0, n_frames: int | None = None, append: bool = False,
                  reject: RejectFilter | None = None, emg: bool = False, num_inference_steps: int | None = None,
                  max_attempts_factor: int = 10, progress: bool = False, generator: Any = None,
                  new_identities: int | None = None, identities_from_training: bool = False,
                  guidance_scale: float | None = None, sampler: str | None = None,
                  expression: str | None = None, identity_filter: Any = None) -> dict[str, Any]:
    """Generate ``n`` sequences and write them as a corpus.

    Parameters
    ----------
    %(generator_dir)s
    out : path-like
        The corpus folder (created). If it holds a corpus, ``append`` must be True.
    n : int
        Number of sequences to keep.
    seed : int | None
        Seed of the first attempt; attempt ``k`` uses ``seed + k`` and rejected attempts use up seeds.
        None: 0 for a new corpus, the seed after the last one used when appending. A seed already
        used by a sequence of the corpus is refused (ValueError).
    emotions : sequence of str
        Emotions cycled over the kept sequences (ignored with ``au_timeline``).
    kind : ``"micro"`` | ``"macro"``
        Expression duration class.
    au_timeline : SampledAUTimeline | None
        Explicit AU curves (e.g. :func:`synth.facs.read_au_timeline_csv`) instead of emotions.
    %(corpus_fps)s
    n_frames : int | None
        Frames per sequence; None: as long as the expression (or the AU timeline).
    append : bool
        Add to an existing corpus (new ids) instead of refusing.
    reject : callable | None
        Rejection filter (e.g. ``synth.privacy.rejection.NearestNeighbourFilter``): a sequence with any
        frame flagged too close to training data is dropped and another seed drawn. Its ``threshold``
        attribute, if any, is recorded.
    %(corpus_emg)s
    %(num_inference_steps)s
    max_attempts_factor : int
        Give up after ``n * max_attempts_factor`` attempts (a filter that rejects everything).
    %(progress_bar)s
    generator : AUGenerator | None
        An already loaded generator for ``model_dir`` (saves loading it again).
    new_identities : int | None
        Spread the sequences over this many new identities drawn from the model's identity prior
        (seeded by ``seed``; sequence ``seq-0000j`` shows identity ``j mod new_identities``). Needs a
        model trained with ``model.identity.enabled``. None: no identity (``"none"``), or, when
        appending, the corpus' own identities.
    identities_from_training : bool
        The deliberately LEAKING control for the privacy audit: condition on the training subjects' own
        learned embeddings (``"train:<subject_id>"``). Never use such a corpus as data.
    guidance_scale : float | None
        Expression guidance of diffusion models
        (:meth:`synth.generative.diffusion.DiffusionGenerator.sample`); recorded per sequence.
        None: off (the GAN takes none).

    sampler : ``"ddim"`` | ``"dpm++"`` | None
        Diffusion sampler (None: the model's ``model.sampler``). Diffusion sequences record the sampler
        and its steps (``sampler``, ``sampler_steps``).
    expression : ``"motion"`` | ``"diffusion"`` | None
        What renders the requested AUs of a diffusion model: its learned AU motion model on one sampled
        neutral face per sequence, or the denoiser frame by frame
        (:meth:`synth.generative.diffusion.DiffusionGenerator.set_expression`). None: the motion model
        when the model has one. Recorded per sequence (``expression``).
    identity_filter : NearestNeighbourFilter | None
        Face filter for ``new_identities`` (e.g. ``synth.privacy.rejection.NearestNeighbourFilter`` with
        ``scope="subject"``: anything callable like ``reject`` with ``distances(rgbd)``, ``threshold``
        and ``calibration``), in two stages. Each identity the prior draws gets
        :data:`IDENTITY_CHECK_RENDERS` neutral faces rendered (all AUs 0, seeds from ``seed``) and is
        redrawn if one of them is closer than ``threshold`` to a training frame (recorded in
        ``corpus.json``'s ``identities.face_filter``). Then every sequence is checked frame by frame
        like ``reject`` at the same threshold (or at ``reject``'s, if that is larger), because a
        sequence renders its neutral face from its own seed and may still come closer. None: no check.

    Returns
    -------
    corpus : dict
        The corpus index as written to ``corpus.json``.

    Raises
    ------
    ValueError
        Bad options, AUs the model was not trained on (:mod:`synth.generative.coverage`), identities
        asked of a model without an identity input, more new identities than the prior supports, or an
        append that changes the identities; all before anything is written.
    """
    out = Path(out)
    _check_sequence_options(n, emotions, kind, au_timeline)
    existing = _existing_corpus(out, append=append)
    gen = generator if generator is not None else load_generator(model_dir)
    if guidance_scale is not None and gen.kind != "diffusion":
        raise ValueError(f"Expression guidance works on diffusion models; {model_dir} is a {gen.kind} model. "
                         "Leave out --guidance.")
    if sampler is not None and gen.kind != "diffusion":
        raise ValueError(f"--sampler chooses a diffusion sampler; {model_dir} is a {gen.kind} model, which samples "
                         "in one pass. Leave out --sampler.")
    if expression is not None and gen.kind != "diffusion":
        raise ValueError(f"--expression chooses how a diffusion model renders AUs; {model_dir} is a {gen.kind} model. "
                         "Leave out --expression.")
    if sampler is not None:
        gen.set_sampler(sampler)
    if expression is not None:
        gen.set_expression(expression)
    if guidance_scale is not None and getattr(gen, "expression", None) == "motion":
        raise ValueError("Expression guidance acts on the denoiser, but this model renders expression with its AU "
                         "motion model; leave out --guidance, or add --expression diffusion.")
    check_requested_aus(gen.card, model_dir, emotions=emotions if au_timeline is None else (),
                        timeline=au_timeline.aus if au_timeline is not None else None)
    sha = model_sha256(model_dir)
    if existing is not None and existing["generator"]["model_sha256"] != sha:
        raise ValueError(f"{out} was generated by model {existing['generator']['model_sha256'][:12]}..., not "
                         f"{sha[:12]}... ({model_dir}); append only with the same model, or use a new --out.")
    first_seed = _first_seed(out, existing or {"seeds": None, "sequences": []}, seed, n)
    identities = _identity_plan(gen, model_dir, existing, new_identities, identities_from_training, first_seed,
                                identity_filter=identity_filter, num_inference_steps=num_inference_steps)
    if identity_filter is not None:
        reject = _frame_check(reject, identity_filter)
    created_out = not out.exists()
    (out / SESSIONS_DIR).mkdir(parents=True, exist_ok=True)
    corpus = existing or _new_index(gen, model_dir, sha)
    corpus["identities"] = identities.index
    run = _SamplingRun(out, corpus, gen, sha, seed=first_seed, n=n, reject=reject,
                       next_id=_next_id(out, existing), identities=identities, guidance_scale=guidance_scale,
                       num_inference_steps=num_inference_steps)

    def request(this_seed: int) -> SequenceRequest:
        if au_timeline is not None:
            return timeline_request(au_timeline, fps=fps, n_frames=n_frames)
        # Cycle over kept sequences, so a rejection does not skip an emotion.
        return emotion_request(emotions[run.kept % len(emotions)], kind, seed=this_seed, fps=fps, n_frames=n_frames)

    try:
        run.sample(request, emg=emg, max_attempts=n * max_attempts_factor, progress=progress)
    except BaseException:
        if existing is None and not corpus["sequences"]:
            _remove_empty_corpus(out, created_out)
        raise
    logger.info("Wrote %d synthetic sequence(s) to %s (%d rejected)", run.kept, out, run.rejected)
    return corpus


def _check_sequence_options(n: int, emotions: Sequence[str], kind: str,
                            au_timeline: SampledAUTimeline | None) -> None:
    """Refuse a request no sequence can satisfy, before anything is loaded or written."""
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}.")
    if au_timeline is None:
        if not emotions:
            raise ValueError("Give --emotion (one or more, comma-separated) or --au-timeline.")
        for emotion in emotions:
            check_emotion(emotion)
        if kind not in ("micro", "macro"):
            raise ValueError(f"Unknown expression kind {kind!r}; use micro or macro.")


@dataclass
class _Identities:
    """The identities of a corpus: labels and vectors (none for ``"none"``), and their ``corpus.json`` entry."""

    labels: list[str]
    vectors: np.ndarray | None
    index: dict[str, Any]

    def of(self, seq_number: int) -> tuple[str, np.ndarray | None]:
        """Label and vector of sequence ``seq-<seq_number>``: identity ``seq_number mod n``."""
        if self.vectors is None:
            return NO_IDENTITY, None
        k = seq_number % len(self.labels)
        return self.labels[k], self.vectors[k]


def _identity_plan(gen: Any, model_dir: str | os.PathLike, existing: dict[str, Any] | None,
                   new_identities: int | None, from_training: bool, seed: int, *, identity_filter: Any = None,
                   num_inference_steps: int | None = None) -> _Identities:
    """Which identities the sequences show; every refusal happens here, before anything is written."""
    if new_identities is not None and from_training:
        raise ValueError("Give either --new-identities or --identities-from-training, not both.")
    if identity_filter is not None and (new_identities is None or existing is not None):
        raise ValueError("The identity face filter (--reject-identities-closer-than) vets new identities as they are "
                         "drawn: use it with --new-identities on a new corpus (an --append run keeps the corpus' "
                         "own identities).")
    has_identity = bool(getattr(gen, "has_identity", False))
    if (new_identities is not None or from_training) and not has_identity:
        raise ValueError(f"{model_dir} has no identity input: it is an AU-only {gen.kind} model, whose sequences "
                         "carry identity 'none'. --new-identities and --identities-from-training need a diffusion "
                         "model trained with model.identity.enabled=true (e.g. --config diffusion-64-cpu).")
    previous = (existing or {}).get("identities") if existing is not None else None
    if existing is not None:
        return _identities_of_existing(existing, previous, new_identities, from_training)
    if from_training:
        subjects = list(gen.subjects)
        return _Identities([training_identity_label(s) for s in subjects], gen.identity_embeddings(), {
            "kind": "train", "n": len(subjects), "prior": None, "min_distance": None, "subjects": subjects,
            "leaking": "conditioned on the training subjects' own embeddings: the privacy audit's negative control",
            "vectors": gen.identity_embeddings().tolist()})
    if new_identities is None:
        return _Identities([], None, {"kind": "none", "n": 0, "prior": None, "min_distance": None})
    if gen.prior is None:
        raise ValueError(f"{model_dir} has an identity input but no fitted identity prior in its card; it was saved "
                         "before training finished. Finish training (emosync synth train --resume).")
    face_check = None if identity_filter is None else _IdentityFaceCheck(gen, identity_filter, seed=seed,
                                                                        num_inference_steps=num_inference_steps)
    vectors = gen.prior.draw(new_identities, seed=seed, accept=face_check)
    prior = {k: v for k, v in gen.prior.to_card().items() if k not in ("subjects", "min_distance")}
    return _Identities([new_identity_label(k) for k in range(new_identities)], vectors, {
        "kind": "new", "n": int(new_identities), "prior": prior, "min_distance": gen.prior.min_distance,
        "seed": int(seed), "vectors": vectors.tolist(),
        **({} if face_check is None else {"face_filter": face_check.record()})})


def _frame_check(reject: RejectFilter | None, identity_filter: Any) -> RejectFilter:
    """The sequence filter when new identities are face-checked: the stricter of the two thresholds."""
    if reject is None or getattr(reject, "threshold", np.inf) < identity_filter.threshold:
        return identity_filter
    if hasattr(reject, "threshold"):
        return reject
    return lambda rgbd: np.asarray(reject(rgbd), dtype=bool) | identity_filter(rgbd)


class _IdentityFaceCheck:
    """The ``accept`` check of :meth:`IdentityPrior.draw`: render a candidate's neutral faces, measure them."""

    def __init__(self, gen: Any, face_filter: Any, *, seed: int, num_inference_steps: int | None) -> None:
        self.gen, self.filter, self.seed, self.steps = gen, face_filter, int(seed), num_inference_steps
        self.distances: list[float] = []

    def __call__(self, vector: np.ndarray) -> bool:
        neutral = np.zeros((1, len(AU_IDS)), dtype=np.float32)
        first = self.seed + IDENTITY_CHECK_RENDERS * len(self.distances)
        faces = np.concatenate([self.gen.sample(neutral, seed=first + r, identity=vector,
                                                num_inference_steps=self.steps)
                                for r in range(IDENTITY_CHECK_RENDERS)])
        distance = float(np.min(self.filter.distances(faces)))
        self.distances.append(distance)
        if distance < self.filter.threshold:
            logger.info("New identity candidate %d rejected: a neutral face of it is %.4g from a training frame "
                        "(threshold %.4g)", len(self.distances) - 1, distance, self.filter.threshold)
            return False
        return True

    def record(self) -> dict[str, Any]:
        """What ``corpus.json`` keeps: calibration, how many candidates were checked and rejected, distances."""
        accepted = [d for d in self.distances if d >= self.filter.threshold]
        rejected = [d for d in self.distances if d < self.filter.threshold]
        return {**self.filter.calibration, "renders_per_identity": IDENTITY_CHECK_RENDERS,
                "checked": len(self.distances), "rejected": len(rejected),
                "accepted_distances": accepted, "rejected_distances": rejected}


def _identities_of_existing(existing: dict[str, Any], previous: dict[str, Any] | None, new_identities: int | None,
                            from_training: bool) -> _Identities:
    """An appended run continues with the corpus' own identities; asking for others is refused."""
    previous = previous or {"kind": "none", "n": 0, "prior": None, "min_distance": None}
    kind = previous["kind"]
    asked = "train" if from_training else ("new" if new_identities is not None else kind)
    if asked != kind or (new_identities is not None and new_identities != previous["n"]):
        what = f"{previous['n']} {kind} identities" if kind != "none" else "no identities"
        raise ValueError(f"The corpus holds {what}; --append continues with the same identities. Leave "
                         "--new-identities / --identities-from-training out (or repeat them unchanged), or sample "
                         "into a new --out.")
    if kind == "none":
        return _Identities([], None, previous)
    labels = ([training_identity_label(s) for s in previous["subjects"]] if kind == "train"
              else [new_identity_label(k) for k in range(previous["n"])])
    return _Identities(labels, np.asarray(previous["vectors"], dtype=np.float32), previous)


def _existing_corpus(out: Path, *, append: bool) -> dict[str, Any] | None:
    """The corpus index already in ``out`` (when appending), None for a new corpus; never overwrites."""
    if (out / CORPUS_FILE).exists():
        if not append:
            raise FileExistsError(f"{out} already holds a corpus ({CORPUS_FILE}); sampling never overwrites one. "
                                  "Use --append to add sequences, or choose a new --out.")
        return read_corpus(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty (and holds no {CORPUS_FILE}); choose a new --out.")
    return None


def _new_index(gen: Any, model_dir: str | os.PathLike, sha: str) -> dict[str, Any]:
    """The index of a new corpus: which model made it, no sequences yet."""
    return {
        "synthetic": True,
        "generator": {"kind": gen.kind, "model_dir": str(Path(model_dir).resolve()), "model_sha256": sha,
                      "config": gen.card.get("config", {})},
        "seeds": None, "sequences": [], "rejection": None, "created": utc_now(), "emosync_version": software_version(),
    }


def _first_seed(out: Path, corpus: dict[str, Any], seed: int | None, n: int) -> int:
    """The seed of this run's first attempt: ``seed``, or the one after the corpus' last; refused if already used."""
    if seed is None:
        seed = corpus["seeds"][1] + 1 if corpus["seeds"] else 0
    clash = sorted({int(q["seed"]) for q in corpus["sequences"]} & set(range(seed, seed + n)))
    if clash:
        raise ValueError(f"Seed {clash[0]} is already used by a sequence in {out / CORPUS_FILE}; appending would "
                         f"duplicate it. Leave --seed out (continues after the last seed used, "
                         f"{corpus['seeds'][1]}) or pick one past it.")
    return seed


def _remove_empty_corpus(out: Path, created_out: bool) -> None:
    """Nothing kept in a new corpus: leave no half-made folder that would block a rerun."""
    with contextlib.suppress(OSError):
        (out / SESSIONS_DIR).rmdir()
        if created_out:
            out.rmdir()


class _SamplingRun:
    """One :func:`sample_corpus` call: attempts from ``seed`` on, kept sequences folded into ``corpus``."""

    def __init__(self, out: Path, corpus: dict[str, Any], gen: Any, sha: str, *, seed: int, n: int,
                 reject: RejectFilter | None, next_id: int, identities: _Identities | None = None,
                 guidance_scale: float | None = None, num_inference_steps: int | None = None) -> None:
        self.out, self.corpus, self.gen, self.sha = out, corpus, gen, sha
        self.guidance = {} if guidance_scale is None else {"guidance_scale": float(guidance_scale)}
        self.num_inference_steps = num_inference_steps
        # What made each diffusion sequence: sampler and steps change the frames as much as the seed does.
        self.sampling = ({"sampler": gen.sampler, "sampler_steps": int(num_inference_steps or
                                                                       gen.config.num_inference_steps),
                          "expression": gen.expression}
                         if gen.kind == "diffusion" else {})
        self.identities = identities or _Identities([], None, {"kind": "none", "n": 0})
        self.seed, self.n, self.reject, self.next_id = seed, n, reject, next_id
        self.prev_seeds, self.prev_rejection = corpus["seeds"], corpus["rejection"]
        self.used_seeds = {int(q["seed"]) for q in corpus["sequences"]}
        self.kept = self.attempts = self.rejected = 0

    def sample(self, request: Callable[[int], SequenceRequest], *, emg: bool, max_attempts: int,
               progress: bool) -> None:
        """Attempt seeds until ``n`` sequences are kept; ``request(seed)`` says what each attempt shows."""
        from tqdm.auto import tqdm

        with tqdm(total=self.n, disable=not progress, desc="synth sample", unit="seq") as bar:
            while self.kept < self.n:
                if self.attempts >= max_attempts:
                    raise RuntimeError(f"The rejection filter rejected {self.rejected} of {self.attempts} sequences; "
                                       f"gave up after {self.attempts} attempts with {self.kept} kept (written to "
                                       f"{self.out}). Loosen the threshold or retrain.")
                this_seed = self.seed + self.attempts
                if this_seed in self.used_seeds:
                    raise ValueError(f"Seed {this_seed} is already used by a sequence in {self.out / CORPUS_FILE}; "
                                     f"stopped after {self.kept} new sequence(s). Append again without --seed to "
                                     "continue.")
                sequence = request(this_seed)
                # The identity follows the sequence id (rejected attempts use up seeds, not ids).
                label, vector = self.identities.of(self.next_id)
                extra = dict(self.guidance) if vector is None else {"identity": vector, **self.guidance}
                rgbd = self.gen.sample(sequence.aus, seed=this_seed, num_inference_steps=self.num_inference_steps,
                                       **extra)
                self.attempts += 1
                if self._rejected(rgbd, this_seed):
                    continue
                self._keep(sequence, rgbd, this_seed, emg=emg, identity=label)
                bar.update(1)

    def _rejected(self, rgbd: np.ndarray, this_seed: int) -> bool:
        """Whether the filter rejects the attempt (counted, and recorded once the corpus has sequences)."""
        if self.reject is None:
            return False
        too_close = np.asarray(self.reject(rgbd), dtype=bool)
        if not too_close.any():
            return False
        self.rejected += 1
        logger.info("Seed %d rejected: %d of %d frames too close to training frames", this_seed, int(too_close.sum()),
                    len(too_close))
        if self.corpus["sequences"]:
            self.record()
        return True

    def _keep(self, sequence: SequenceRequest, rgbd: np.ndarray, this_seed: int, *, emg: bool,
              identity: str = NO_IDENTITY) -> None:
        """Write the sequence as the corpus' next session and record it in the index."""
        seq_id = f"seq-{self.next_id:05d}"
        self.next_id += 1
        write_sequence(self.out / SESSIONS_DIR / f"{seq_id}.h5", sequence, rgbd, emg=emg, seed=this_seed, metadata={
            "generator_kind": self.gen.kind, "model_sha256": self.sha, "seed": this_seed,
            "emotion": sequence.emotion or "", "expression_kind": sequence.kind or "", "corpus_id": seq_id,
            "identity": identity})
        self.corpus["sequences"].append({"id": seq_id, "file": f"{SESSIONS_DIR}/{seq_id}.h5",
                                         "emotion": sequence.emotion, "kind": sequence.kind, "seed": this_seed,
                                         "n_frames": int(len(sequence.aus)), "fps": float(sequence.fps),
                                         "identity": identity, **self.sampling, **self.guidance})
        self.used_seeds.add(this_seed)
        self.kept += 1
        self.record()

    def record(self) -> None:
        """Fold this run's attempts into the index and write it (atomically)."""
        first, last = self.seed, self.seed + self.attempts - 1
        prev = self.prev_seeds
        self.corpus["seeds"] = [first, last] if prev is None else [min(prev[0], first), max(prev[1], last)]
        if self.reject is not None or self.prev_rejection is not None:
            before = self.prev_rejection or {"n_generated": 0, "n_rejected": 0}
            gen_total, rej_total = before["n_generated"] + self.attempts, before["n_rejected"] + self.rejected
            threshold = getattr(self.reject, "threshold", None) if self.reject is not None else before.get("threshold")
            self.corpus["rejection"] = {"n_generated": gen_total, "n_rejected": rej_total,
                                        "rate": rej_total / gen_total if gen_total else 0.0,
                                        "threshold": float(threshold) if threshold is not None else None}
        _write_index(self.out, self.corpus)
