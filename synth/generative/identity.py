"""Identity as a separate input of the generators, and the prior that draws people who do not exist.

A generator with ``model.identity.enabled`` learns one embedding per training subject (an
``nn.Embedding`` over the sorted training ``subject_id`` values, trained jointly with the
denoiser). The AU path is untouched: identity enters as its own input (an extra cross-attention
token, and/or appended to the class projection), so expression and identity are two separate
knobs. This module holds what happens around that table:

- :class:`IdentityPrior`: fitted after training over the learned embeddings; draws *new*
  identities and rejects any draw closer than ``min_distance`` (Euclidean, in the embedding
  space) to a training embedding or to an identity already accepted for the same corpus.
- :func:`identity_noise`: the initial noise of one sequence (shared, slow AR(1) walk or
  independent), because a fixed identity alone does not keep a sequence from flickering.
- The identity labels a corpus writes: ``new-0007`` (index of the new identity within the
  corpus), ``train:<subject_id>`` (the deliberately leaking control) and ``none`` (AU-only).

It lives apart from :mod:`synth.generative.diffusion` so the corpus writer, the model card and
the privacy audit can read the prior without importing diffusers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Identity label of a sequence generated without an identity input (AU-only model, or null identity).
NO_IDENTITY = "none"
#: File (inside a model's ``weights/``) holding the learned identity table.
IDENTITY_WEIGHTS = "identity.safetensors"
#: Draws tried per requested identity before giving up (the rejection rule refuses too many).
MAX_DRAWS_PER_IDENTITY = 200
#: Candidates put to :meth:`IdentityPrior.draw`'s ``accept`` check per requested identity before giving up
#: (each check may render a face, so far fewer than the cheap embedding rule gets).
MAX_ACCEPT_CHECKS_PER_IDENTITY = 10


def new_identity_label(index: int) -> str:
    """``new-0007``: the label of the ``index``-th new identity of a corpus."""
    return f"new-{int(index):04d}"


def training_identity_label(subject_id: str) -> str:
    """``train:<subject_id>``: the label of a sequence conditioned on a training subject (leaking control)."""
    return f"train:{subject_id}"


def nearest_distances(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Euclidean distance from each row of ``points`` (n, d) to its nearest row of ``reference`` (m, d): (n,)."""
    points, reference = np.atleast_2d(points), np.atleast_2d(reference)
    if len(reference) == 0:
        return np.full(len(points), np.inf)
    d2 = (points ** 2).sum(1)[:, None] + (reference ** 2).sum(1)[None] - 2 * points @ reference.T
    return np.sqrt(np.maximum(d2, 0.0)).min(axis=1)


@dataclass
class IdentityPrior:
    """A distribution over identity embeddings, fitted on the training subjects' learned embeddings.

    Parameters
    ----------
    kind : ``"mixture"`` | ``"gaussian"``
        ``mixture``: ``sum_j w_j e_j`` over ``mix_k`` distinct training embeddings chosen at
        random, ``w ~ Dirichlet(alpha)``, re-scaled to the training embeddings' mean norm (a
        plain convex mix shrinks towards the mean face). ``gaussian``: ``N(mean, cov)`` with
        ``cov = (1 - shrinkage) S + shrinkage tr(S)/d I`` (S: the sample covariance), because 16-32
        subjects cannot estimate a full covariance in ``d`` dimensions.
    embeddings : array of float32, shape (n_subjects, dim)
        The learned training embeddings (the reference of the distance rule).
    subjects : list of str
        Their ``subject_id`` values, in row order.
    min_distance : float
        Draws closer than this (Euclidean) to any training embedding, or to an identity already
        accepted in the same draw, are rejected.
    max_new_identities : int
        Most new identities one call of :meth:`draw` may return.
    mix_k, dirichlet_alpha, shrinkage : see ``kind``.
    """

    kind: str
    embeddings: np.ndarray
    subjects: list[str]
    min_distance: float
    max_new_identities: int
    mix_k: int = 3
    dirichlet_alpha: float = 1.0
    shrinkage: float = 0.5

    @classmethod
    def fit(cls, embeddings: np.ndarray, subjects: list[str], config: Any) -> IdentityPrior:
        """Fit on the learned table; ``config`` is a :class:`~synth.generative.config.IdentityConfig`.

        ``min_distance = config.min_distance_factor * median_i min_{j != i} |e_i - e_j|``: a new
        identity must be at least that fraction of the typical gap between two training subjects away
        from every one of them.
        """
        embeddings = np.asarray(embeddings, dtype=np.float64)
        if len(embeddings) < 2:
            raise ValueError(f"An identity prior needs at least 2 training subjects, got {len(embeddings)}; train "
                             "on sessions of several subjects (different subject_id), or set "
                             "model.identity.enabled=false.")
        gaps = [nearest_distances(embeddings[i], np.delete(embeddings, i, axis=0))[0] for i in range(len(embeddings))]
        return cls(kind=config.prior, embeddings=embeddings.astype(np.float32), subjects=list(subjects),
                   min_distance=float(config.min_distance_factor * np.median(gaps)),
                   max_new_identities=int(config.max_new_identities), mix_k=min(config.mix_k, len(embeddings)),
                   dirichlet_alpha=float(config.dirichlet_alpha), shrinkage=float(config.shrinkage))

    # -- the card --------------------------------------------------------------
    def describe(self) -> str:
        """One sentence for the model card and ``corpus.json``: how new identities are made."""
        if self.kind == "mixture":
            how = (f"Dirichlet(alpha={self.dirichlet_alpha:g}) mix of {self.mix_k} distinct training embeddings, "
                   "re-scaled to their mean norm")
        else:
            how = f"Gaussian over the training embeddings, covariance shrunk by {self.shrinkage:g} towards tr(S)/d I"
        return (f"{how}; a draw closer than {self.min_distance:.4g} (Euclidean) to any of the "
                f"{len(self.subjects)} training embeddings or to another accepted identity is rejected")

    def to_card(self) -> dict[str, Any]:
        """The prior's parameters for the model card (the embeddings themselves live in ``weights/``)."""
        return {"kind": self.kind, "subjects": self.subjects, "dim": int(self.embeddings.shape[1]),
                "min_distance": self.min_distance, "max_new_identities": self.max_new_identities,
                "mix_k": self.mix_k, "dirichlet_alpha": self.dirichlet_alpha, "shrinkage": self.shrinkage,
                "description": self.describe()}

    @classmethod
    def from_card(cls, card: dict[str, Any], embeddings: np.ndarray) -> IdentityPrior:
        """Rebuild from :meth:`to_card`'s dict and the table stored with the weights."""
        return cls(kind=card["kind"], embeddings=np.asarray(embeddings, np.float32), subjects=list(card["subjects"]),
                   min_distance=float(card["min_distance"]), max_new_identities=int(card["max_new_identities"]),
                   mix_k=int(card["mix_k"]), dirichlet_alpha=float(card["dirichlet_alpha"]),
                   shrinkage=float(card["shrinkage"]))

    # -- drawing ---------------------------------------------------------------
    def _candidates(self, rng: np.random.Generator, n: int) -> np.ndarray:
        emb = self.embeddings.astype(np.float64)
        if self.kind == "mixture":
            norm = np.linalg.norm(emb, axis=1).mean()
            out = np.empty((n, emb.shape[1]))
            for i in range(n):
                chosen = rng.choice(len(emb), self.mix_k, replace=False)
                mix = rng.dirichlet(np.full(self.mix_k, self.dirichlet_alpha)) @ emb[chosen]
                out[i] = mix * norm / max(np.linalg.norm(mix), 1e-12)
            return out
        mean = emb.mean(axis=0)
        cov = np.cov(emb, rowvar=False)
        cov = (1 - self.shrinkage) * cov + self.shrinkage * np.trace(cov) / len(mean) * np.eye(len(mean))
        return rng.multivariate_normal(mean, cov, size=n, method="eigh")

    def draw(self, n: int, *, seed: int, accept: Callable[[np.ndarray], bool] | None = None) -> np.ndarray:
        """``n`` new identities, deterministic from ``seed``, each passing the distance rule.

        Parameters
        ----------
        n : int
            Number of distinct new identities.
        seed : int
            Seed of the draw (the same prior, ``n``, seed and ``accept`` give the same identities).
        accept : callable | None
            A further check of each candidate that passed the distance rule, called with its vector
            (shape ``(dim,)``) in draw order; False rejects it (e.g. its rendered face is too close to a
            training face, :func:`synth.generative.corpus.sample_corpus`). None: no further check.

        Returns
        -------
        identities : array of float32, shape (n, dim)

        Raises
        ------
        ValueError
            If ``n`` exceeds ``max_new_identities``, or the rule rejected too many draws to find ``n``
            (``MAX_DRAWS_PER_IDENTITY`` per identity), or ``accept`` refused
            ``MAX_ACCEPT_CHECKS_PER_IDENTITY`` candidates per identity.
        """
        if n < 1:
            raise ValueError(f"The number of new identities must be at least 1, got {n}.")
        if n > self.max_new_identities:
            raise ValueError(f"{n} new identities requested, but this model's identity prior supports at most "
                             f"{self.max_new_identities} (model.identity.max_new_identities, fitted on "
                             f"{len(self.subjects)} training subjects). Ask for fewer, or spread the sequences over "
                             "several corpora.")
        rng = np.random.default_rng([int(seed), 0x1DE417])
        accepted: list[np.ndarray] = []
        tried = checked = 0
        while len(accepted) < n:
            if tried >= MAX_DRAWS_PER_IDENTITY * n:
                raise ValueError(f"The identity prior found only {len(accepted)} of {n} new identities in {tried} "
                                 f"draws: the rest were closer than min_distance={self.min_distance:.4g} to a training "
                                 "embedding or to each other. Ask for fewer new identities, or lower "
                                 "model.identity.min_distance_factor and retrain.")
            batch = self._candidates(rng, 64)
            tried += len(batch)
            far = nearest_distances(batch, self.embeddings.astype(np.float64)) >= self.min_distance
            for candidate in batch[far]:
                if len(accepted) == n or nearest_distances(candidate, np.array(accepted).reshape(
                        -1, len(candidate)))[0] < self.min_distance:
                    continue
                if accept is not None:
                    if checked >= MAX_ACCEPT_CHECKS_PER_IDENTITY * n:
                        raise ValueError(f"Only {len(accepted)} of {n} new identities passed the further check "
                                         f"(e.g. the face filter) in {checked} candidates. Ask for fewer new "
                                         "identities, or loosen that check.")
                    checked += 1
                    if not accept(candidate):
                        continue
                accepted.append(candidate)
        return np.array(accepted, dtype=np.float32)


def identity_noise(shape: tuple[int, ...], n_frames: int, *, scheme: str, seed: int, rho: float = 0.98) -> np.ndarray:
    """Initial noise of one sequence's frames, shape ``(n_frames, *shape)``, float32, unit variance per frame.

    Parameters
    ----------
    shape : tuple of int
        One frame's noise shape, ``(channels, height, width)``.
    n_frames : int
        Frames in the sequence.
    scheme : ``"shared"`` | ``"walk"`` | ``"independent"``
        ``shared``: one draw for every frame (frames differ only through their AUs);
        ``walk``: an AR(1) walk ``x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t`` (slow change, unit variance);
        ``independent``: a fresh draw per frame.
    seed : int
        Seed of the draws.
    rho : float
        Step-to-step correlation of the walk.
    """
    import torch

    generator = torch.Generator().manual_seed(int(seed))
    if scheme == "shared":
        return torch.randn((1, *shape), generator=generator).expand(n_frames, *shape).numpy().copy()
    draws = torch.randn((n_frames, *shape), generator=generator).numpy()
    if scheme == "independent":
        return draws
    if scheme != "walk":
        raise ValueError(f"Unknown noise scheme {scheme!r}; use shared, walk or independent.")
    out = np.empty_like(draws)
    out[0] = draws[0]
    for t in range(1, n_frames):
        out[t] = rho * out[t - 1] + np.sqrt(1 - rho ** 2) * draws[t]
    return out
