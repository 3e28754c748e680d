"""Identity privacy of a synthetic corpus: are its people new, or can a training subject be named?

The frame-level checks of the audit (pixel and embedding nearest neighbours, memorization) ask
whether single frames come too close to training frames. A generator of new people must also
pass a question about *people*: each synthetic identity (all frames the corpus labels with one
identity) must be no closer to a training subject than real new people are, and an attacker
asking "which training subject is this?" must do no better on it than on real new people.

Both questions are answered in the embedding of the audit's identity encoder
(:mod:`synth.privacy.identity`), trained on the training subjects' frames:

1. **Per-identity distance.** Each identity is summarized by its robust centroid (the mean
   direction of its unit-norm frame embeddings after dropping the ``trim_fraction`` of frames
   least like the rest), and measured by the chord distance (Euclidean, on the unit sphere,
   0 to 2) to the nearest training subject's centroid. Averaging over frames cancels what
   changes within a person (expression, pose, generation noise) and keeps what the encoder was
   trained to keep (who it is); trimming keeps a few odd frames (a blink, a failed sample) from
   moving the centroid. The reference is the same statistic for real new people: the held-out
   subjects who are not training subjects. Because a centroid over few frames is noisier than one
   over many, each held-out subject is measured on ``groups_per_subject`` random groups of as many
   frames as a synthetic identity has (the median count), and summarized by the median over its
   groups. The groups of one person are not independent people: tests count subjects, never
   groups (which only match frame counts and show the spread).
2. **Re-identification.** The encoder's subject head classifies each identity centroid; its top-1
   probability is the attacker's confidence (compared as log-odds, which do not saturate). An
   identity is *re-identified* when that confidence exceeds the ``reid_quantile`` of the held-out
   subjects' confidences (what real new people reach; an order statistic, so the share of new
   people above it is known exactly: :func:`exceedance_test`). For identities labelled
   ``train:<subject>`` (a deliberately leaking control), the accuracy of naming that subject is
   reported against chance ``1 / n_train``: it shows the attack works.

The rule (:func:`identity_checks`), all in ``configs/synth/audit.yaml`` (``identity_privacy``):

- ``identity_distance_median``: the synthetic identities' median distance is at least
  ``(1 - tolerance)`` times a distribution-free lower confidence bound of the held-out subjects'
  median (an order statistic, :func:`median_lower_bound`). With few held-out subjects the bound
  is their smallest distance, and its confidence, ``1 - 0.5 ** k`` for ``k`` subjects, is reported.
- ``identity_distance_rank``: a one-sided Mann-Whitney test of "synthetic identities are closer to
  the training subjects than held-out subjects are" must not reject at ``alpha``. A test that
  cannot reject at ``alpha`` with the numbers at hand (e.g. 2 held-out subjects and 3 identities)
  is listed as not decided, not passed.
- ``reidentification_rate``: at most ``max_reid_rate`` of the identities re-identified, unless
  new people would reach that many by chance with probability >= ``alpha`` (with 4 held-out
  subjects, 1 in 5 new people exceed the most confident of them; a few identities above the
  threshold is then no evidence).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from acquisition import logger
from synth.privacy.nearest import distance_summary

#: Identity values that mean "no identity information" (old AU-only generators).
NO_IDENTITY = ("", "none", "null")

#: Prefix of a deliberately leaking control identity: ``train:<subject_id>``.
LEAK_PREFIX = "train:"

#: Prefix of a new identity drawn by an identity-conditioned generator: ``new-0007``.
NEW_PREFIX = "new-"


@dataclass
class IdentityLabels:
    """Which synthetic identity each corpus frame shows.

    Attributes
    ----------
    labels : ndarray of str, shape (n_frames,)
        Identity of each frame; frames of sequences without identity information are labelled
        ``sequence:<id>`` (each sequence its own identity).
    kinds : dict of str to str
        Per identity: ``"new"`` (``new-*``), ``"leak"`` (``train:<subject>``), ``"labelled"`` (any
        other label) or ``"sequence"`` (no identity information).
    leaked_subjects : dict of str to str
        Per ``"leak"`` identity, the training subject it was conditioned on.
    source : str
        Where the labels came from, in words (``corpus.json``, or the per-sequence fallback).
    """

    labels: np.ndarray
    kinds: dict[str, str]
    leaked_subjects: dict[str, str]
    source: str


def identity_labels(sequence_ids: np.ndarray, identities: np.ndarray) -> IdentityLabels:
    """Per-frame identity labels from the corpus's per-frame sequence ids and identity strings.

    Parameters
    ----------
    sequence_ids : ndarray of str, shape (n_frames,)
        Sequence of each frame (``corpus.json``'s ``id``).
    identities : ndarray of str, shape (n_frames,)
        The sequence's ``identity`` (``"new-0007"``, ``"train:<subject_id>"``, or ``""``/``"none"``
        when the generator records none).

    Returns
    -------
    labels : IdentityLabels
    """
    sequence_ids, identities = np.asarray(sequence_ids).astype(str), np.asarray(identities).astype(str)
    if sequence_ids.shape != identities.shape:
        raise ValueError(f"sequence_ids has shape {sequence_ids.shape} but identities has {identities.shape}")
    missing = np.isin(np.char.lower(np.char.strip(identities)), NO_IDENTITY)
    labels = np.where(missing, np.char.add("sequence:", sequence_ids), np.char.strip(identities))
    kinds, leaked = {}, {}
    for label in np.unique(labels):
        if label.startswith("sequence:"):
            kinds[label] = "sequence"
        elif label.startswith(LEAK_PREFIX):
            kinds[label], leaked[label] = "leak", label[len(LEAK_PREFIX):]
        else:
            kinds[label] = "new" if label.startswith(NEW_PREFIX) else "labelled"
    n_missing = len(np.unique(sequence_ids[missing]))
    if not missing.any():
        source = "corpus.json (one identity label per sequence)"
    elif missing.all():
        source = (f"per-sequence fallback: no sequence records an identity (a generator without identity "
                  f"conditioning), so each of the {n_missing} sequences counts as its own identity")
    else:
        source = (f"corpus.json, with {n_missing} sequence(s) without an identity each counted as its own "
                  "identity")
    if missing.any():
        logger.warning("Identity audit: %s.", source)
    return IdentityLabels(labels, kinds, leaked, source)


def robust_centroid(embeddings: np.ndarray, *, trim_fraction: float = 0.1) -> np.ndarray:
    """Unit-length mean direction of embeddings, after dropping those least like the rest.

    Parameters
    ----------
    embeddings : ndarray of float, shape (n, dim)
        Unit-norm embeddings of one identity's frames.
    trim_fraction : float
        In [0, 0.5): the ``floor(trim_fraction * n)`` embeddings with the lowest cosine to the plain
        mean direction are dropped before the mean is taken again.

    Returns
    -------
    centroid : ndarray of float64, shape (dim,)
        Unit length.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"embeddings must have shape (n >= 1, dim), got {x.shape}")
    if not 0 <= trim_fraction < 0.5:
        raise ValueError(f"trim_fraction must be in [0, 0.5), got {trim_fraction}")
    mean = _unit(x.mean(0))
    n_drop = int(math.floor(trim_fraction * len(x)))
    if n_drop:
        keep = np.argsort(x @ mean, kind="stable")[n_drop:]
        mean = _unit(x[keep].mean(0))
    return mean


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v)
    if not norm > 1e-12:
        # Embeddings that cancel exactly have no mean direction; say so rather than divide by zero.
        raise ValueError("the embeddings of an identity cancel out (mean of length 0); it has no centroid")
    return v / norm


def nearest_centroid(queries: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chord distance of each unit-length query to its nearest unit-length centroid.

    Parameters
    ----------
    queries : ndarray, shape (n, dim)
    centroids : ndarray, shape (k, dim)

    Returns
    -------
    distance : ndarray of float64, shape (n,)
        Euclidean distance on the unit sphere, in [0, 2] (``sqrt(2 - 2 cos)``).
    index : ndarray of int, shape (n,)
        Row of the nearest centroid.
    """
    q, c = np.asarray(queries, dtype=np.float64), np.asarray(centroids, dtype=np.float64)
    d = np.sqrt(np.maximum(((q[:, None, :] - c[None, :, :]) ** 2).sum(-1), 0.0))
    index = d.argmin(1)
    return d[np.arange(len(q)), index], index


def median_lower_bound(values: np.ndarray, *, alpha: float = 0.05) -> dict[str, Any]:
    """Distribution-free lower confidence bound of the median: an order statistic of ``values``.

    For ``k`` independent values, the r-th smallest lies below the population median with
    probability ``P(Binomial(k, 1/2) >= r)``; the bound is the largest order statistic for which
    that probability is at least ``1 - alpha``. When even the smallest value does not reach it
    (``k`` < log2(1 / alpha), e.g. fewer than 5 values at alpha 0.05) the smallest value is used and
    its lower confidence ``1 - 0.5 ** k`` is reported.

    Parameters
    ----------
    values : array of float, shape (k,)
        One value per independent unit (held-out subject).
    alpha : float
        One-sided error rate.

    Returns
    -------
    bound : dict
        ``value``, ``order`` (1-based rank of the order statistic), ``confidence`` (achieved),
        ``k``.
    """
    from scipy.stats import binom

    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.size == 0:
        raise ValueError("median_lower_bound needs at least one value")
    k = x.size
    # P(X(r) <= median) = P(Bin(k, 1/2) >= r) = binom.sf(r - 1, k, 0.5), decreasing in r.
    confidence = binom.sf(np.arange(k), k, 0.5)
    ok = np.flatnonzero(confidence >= 1.0 - alpha)
    r = int(ok[-1]) + 1 if ok.size else 1
    return {"value": float(x[r - 1]), "order": r, "confidence": float(confidence[r - 1]), "k": int(k)}


def rank_test_smaller(synthetic: np.ndarray, holdout: np.ndarray) -> dict[str, Any]:
    """One-sided Mann-Whitney U test: are synthetic values stochastically smaller than held-out ones?

    Parameters
    ----------
    synthetic : array of float, shape (n_synthetic,)
        One value per synthetic identity.
    holdout : array of float, shape (n_holdout,)
        One value per held-out subject.

    Returns
    -------
    test : dict
        ``p_value`` (small: synthetic identities are closer), ``u`` (pairs with the synthetic value
        smaller, ties counting one half), ``auc`` (``u / (n_synthetic * n_holdout)``, 0.5 = no
        difference), ``min_attainable_p`` (the exact p-value when every synthetic value is below
        every held-out one: the test cannot reject at a level below it), the sizes and the method.
    """
    from scipy.stats import mannwhitneyu

    x, y = np.asarray(synthetic, dtype=np.float64), np.asarray(holdout, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        raise ValueError(f"the rank test needs synthetic and held-out values, got {x.size} and {y.size}")
    result = mannwhitneyu(x, y, alternative="less", method="auto")
    # scipy's U counts pairs with x > y; the pairs where the synthetic identity is closer are the rest.
    u_smaller = float(x.size * y.size - result.statistic)
    return {"p_value": float(result.pvalue), "u": u_smaller, "auc": u_smaller / (x.size * y.size),
            "min_attainable_p": 1.0 / math.comb(x.size + y.size, y.size),
            "n_synthetic": int(x.size), "n_holdout": int(y.size),
            "method": "one-sided Mann-Whitney U (scipy.stats.mannwhitneyu, alternative='less', method='auto')"}


def frame_groups(n_frames: int, group_size: int, n_groups: int, rng: np.random.Generator) -> np.ndarray:
    """Random groups of frame indices: without replacement when there are enough frames, else a bootstrap.

    Returns
    -------
    groups : ndarray of int, shape (n_groups, group_size)
    """
    if n_frames < 1 or group_size < 1 or n_groups < 1:
        raise ValueError(f"need n_frames, group_size and n_groups >= 1, got {n_frames}, {group_size}, {n_groups}")
    if n_frames >= group_size:
        return np.stack([rng.choice(n_frames, group_size, replace=False) for _ in range(n_groups)])
    return rng.integers(0, n_frames, (n_groups, group_size))


@dataclass
class _Reference:
    """What the held-out subjects give: per group and per subject distances and confidences."""

    subjects: list[str]
    n_frames: list[int]
    group_distance: np.ndarray      # (n_subjects, n_groups)
    group_log_odds: np.ndarray      # (n_subjects, n_groups)

    @property
    def distance(self) -> np.ndarray:
        """Per subject: the median over its groups."""
        return np.median(self.group_distance, axis=1)

    @property
    def log_odds(self) -> np.ndarray:
        """Per subject: the median top-1 log-odds over its groups."""
        return np.median(self.group_log_odds, axis=1)


def top1_log_odds(probabilities: np.ndarray) -> np.ndarray:
    """``log(p_top1 / (1 - p_top1))`` per row, with ``1 - p_top1`` summed from the other classes.

    A cosine-softmax head is confident: top-1 probabilities of 0.99999 and 0.9999999 both print
    as 1.000 but are far apart. The log-odds keep them apart (and in order), so thresholds and
    ranks are taken on them; reports give the probability too.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    top = p.max(1)
    rest = p.sum(1) - top
    return np.log(np.maximum(top, 1e-300)) - np.log(np.maximum(rest, 1e-300))


def _reference(holdout_emb: np.ndarray, holdout_subjects: np.ndarray, train_centroids: np.ndarray,
               probabilities: Any, *, group_size: int, n_groups: int, trim: float, seed: int) -> _Reference:
    rng = np.random.default_rng(seed)
    names = sorted(set(holdout_subjects.tolist()))
    distance, log_odds, counts = [], [], []
    for name in names:
        rows = np.flatnonzero(holdout_subjects == name)
        groups = frame_groups(len(rows), group_size, n_groups, rng)
        centroids = np.stack([robust_centroid(holdout_emb[rows[g]], trim_fraction=trim) for g in groups])
        distance.append(nearest_centroid(centroids, train_centroids)[0])
        log_odds.append(top1_log_odds(probabilities(centroids)))
        counts.append(len(rows))
    return _Reference(names, counts, np.stack(distance), np.stack(log_odds))


def exceedance_test(synthetic: np.ndarray, holdout: np.ndarray, *, quantile: float) -> dict[str, Any]:
    """How many synthetic values exceed an order statistic of the held-out ones, and how surprising that is.

    The threshold is the ``r``-th smallest of the ``k`` held-out values, with ``r`` the rank that
    ``np.quantile(holdout, quantile, method="higher")`` picks. If the synthetic identities were
    new people like the held-out ones (exchangeable), all ``(n + k)`` ranks would be equally likely,
    so a synthetic value exceeds the threshold with probability ``(k + 1 - r) / (k + 1)``, whatever
    the distribution, and the number ``c`` of the ``n`` synthetic values above it follows a negative
    hypergeometric law: ``P(c) = C(c + k - r, c) C(n - c + r - 1, n - c) / C(n + k, n)``.

    Parameters
    ----------
    synthetic : array of float, shape (n,)
        One value per synthetic identity (e.g. top-1 log-odds).
    holdout : array of float, shape (k,)
        One value per held-out subject.
    quantile : float
        In (0, 1).

    Returns
    -------
    test : dict
        ``threshold``, ``order`` (``r``), ``k``, ``n``, ``count`` (synthetic values above),
        ``rate`` (``count / n``), ``expected_rate`` (for new people) and ``p_value``
        (``P(at least count)``).
    """
    x, y = np.asarray(synthetic, dtype=np.float64), np.sort(np.asarray(holdout, dtype=np.float64))
    n, k = x.size, y.size
    if n == 0 or k == 0:
        raise ValueError(f"the exceedance test needs synthetic and held-out values, got {n} and {k}")
    threshold = float(np.quantile(y, quantile, method="higher"))
    r = int(np.searchsorted(y, threshold, side="left")) + 1
    count = int(np.sum(x > threshold))
    total = math.comb(n + k, n)
    p_value = sum(math.comb(c + k - r, c) * math.comb(n - c + r - 1, n - c) for c in range(count, n + 1)) / total
    return {"threshold": threshold, "order": r, "k": k, "n": n, "count": count, "rate": count / n,
            "expected_rate": (k + 1 - r) / (k + 1), "p_value": float(min(1.0, p_value))}


def identity_privacy(*, train_emb: np.ndarray, train_subjects: np.ndarray, holdout_emb: np.ndarray,
                     holdout_subjects: np.ndarray, synthetic_emb: np.ndarray, labels: IdentityLabels,
                     probabilities: Any, config: Any, seed: int = 0) -> dict[str, Any]:
    """Per-identity distances, the held-out reference and the re-identification attack.

    Parameters
    ----------
    train_emb, holdout_emb, synthetic_emb : ndarray of float32, shape (n, embed_dim)
        Unit-norm embeddings of the training, held-out and corpus frames.
    train_subjects, holdout_subjects : ndarray of str, shape (n,)
        Subject of each training / held-out frame. Held-out subjects who are also training subjects
        are left out of the reference (they are not new people).
    labels : IdentityLabels
        Identity of each corpus frame (:func:`identity_labels`).
    probabilities : callable
        ``probabilities(centroids (n, embed_dim)) -> (n, n_train_subjects)``: the subject head, with
        columns in the sorted order of the training subjects.
    config : IdentityPrivacyConfig
        ``configs/synth/audit.yaml``'s ``identity_privacy``.
    seed : int
        Seed of the held-out frame groups.

    Returns
    -------
    block : dict
        The ``identity_privacy`` block of the audit result (see docs/privacy-audit.md), or
        ``{"skipped": reason}`` when it cannot be computed.
    """
    train_subjects = np.asarray(train_subjects).astype(str)
    holdout_subjects = np.asarray(holdout_subjects).astype(str)
    train_names = sorted(set(train_subjects.tolist()))
    new_people = np.flatnonzero(~np.isin(holdout_subjects, train_names))
    base = {"identity_source": labels.source, "train_subjects": train_names}
    if len(train_names) < 2:
        return {**base, "skipped": "fewer than two training subjects: there is no subject to tell apart, and the "
                                   "identity encoder was trained on held-out subjects too"}
    if new_people.size == 0:
        return {**base, "skipped": "no held-out subject is a new person (every held-out session is of a training "
                                   "subject), so there is no reference for new people; pass --holdout sessions of "
                                   "other people"}
    trim = config.trim_fraction
    # 1. Training subjects' centroids: the points a synthetic identity must not sit on.
    train_centroids = np.stack([robust_centroid(train_emb[train_subjects == s], trim_fraction=trim)
                                for s in train_names])

    # 2. One centroid per synthetic identity with enough frames.
    names, counts = np.unique(labels.labels, return_counts=True)
    kept = names[counts >= config.min_frames]
    excluded = int(np.sum(counts < config.min_frames))
    if kept.size == 0:
        return {**base, "skipped": f"no synthetic identity has at least identity_privacy.min_frames="
                                   f"{config.min_frames} audited frames (raise frames.max_frames)"}
    centroids = np.stack([robust_centroid(synthetic_emb[labels.labels == name], trim_fraction=trim)
                          for name in kept])
    syn_distance, syn_nearest = nearest_centroid(centroids, train_centroids)
    syn_probs = probabilities(centroids)
    syn_top1, syn_conf, syn_log_odds = syn_probs.argmax(1), syn_probs.max(1), top1_log_odds(syn_probs)
    group_size = int(max(1, np.median(counts[counts >= config.min_frames])))

    # 3. The reference: real new people, measured on groups of as many frames.
    ref = _reference(holdout_emb[new_people], holdout_subjects[new_people], train_centroids, probabilities,
                     group_size=group_size, n_groups=config.groups_per_subject, trim=trim, seed=seed)
    # 4. The distance tests, on one value per identity and one per held-out person.
    bound = median_lower_bound(ref.distance, alpha=config.alpha)
    rank = rank_test_smaller(syn_distance, ref.distance)
    k = len(ref.subjects)
    mode = "full"
    if k < config.min_holdout_subjects:
        mode = (f"degraded: {k} held-out subject(s), fewer than identity_privacy.min_holdout_subjects="
                f"{config.min_holdout_subjects}; the median bound is held-out distance number {bound['order']} "
                f"from the smallest, with confidence {bound['confidence']:.3g}, and the rank test is decided only "
                "where it can reach alpha")
        logger.warning("Identity audit: %s.", mode)

    # 5. Re-identification: confidence above what real new people reach (one value per person).
    exceed = exceedance_test(syn_log_odds, ref.log_odds, quantile=config.reid_quantile)
    reidentified = syn_log_odds > exceed["threshold"]
    identities = []
    for j, name in enumerate(kept):
        identities.append({"identity": str(name), "kind": labels.kinds[str(name)],
                           "n_frames": int(counts[names == name][0]), "distance": float(syn_distance[j]),
                           "nearest_subject": train_names[syn_nearest[j]],
                           "top1_subject": train_names[syn_top1[j]], "top1_confidence": float(syn_conf[j]),
                           "top1_log_odds": float(syn_log_odds[j]), "reidentified": bool(reidentified[j])})
    attributed = {s: int(np.sum(reidentified & (syn_top1 == i))) for i, s in enumerate(train_names)}
    return {
        **base,
        "method": "robust centroid (mean direction after trimming the least typical frames) of each identity's "
                  "identity-encoder embeddings; chord distance (0-2) to the nearest training subject's centroid; "
                  "held-out subjects measured on random frame groups of the synthetic identities' median size",
        "mode": mode,
        "trim_fraction": trim, "group_size": group_size, "groups_per_subject": config.groups_per_subject,
        "n_identities": {**{kind: sum(1 for n in kept if labels.kinds[str(n)] == kind)
                            for kind in ("new", "leak", "labelled", "sequence")},
                         "total": int(kept.size), "excluded_few_frames": excluded},
        "synthetic": {"distance": distance_summary(syn_distance), "identities": identities},
        "holdout": {"subjects": [{"subject": s, "n_frames": n, "distance": float(ref.distance[i]),
                                  "group_distance_p05": float(np.quantile(ref.group_distance[i], 0.05)),
                                  "group_distance_p95": float(np.quantile(ref.group_distance[i], 0.95)),
                                  "top1_log_odds": float(ref.log_odds[i]),
                                  "top1_confidence": float(_probability(ref.log_odds[i]))}
                                 for i, (s, n) in enumerate(zip(ref.subjects, ref.n_frames))],
                    "distance": distance_summary(ref.distance),
                    "group_distance": distance_summary(ref.group_distance.ravel())},
        "distance_test": {"synthetic_median": float(np.median(syn_distance)),
                          "holdout_median": float(np.median(ref.distance)),
                          "holdout_median_lower_bound": bound, "alpha": config.alpha,
                          "tolerance": config.tolerance, "rank_test": rank},
        "reidentification": {
            "attack": "the identity encoder's subject head (cosine softmax over the training subjects) applied "
                      "to each identity centroid; confidence = top-1 probability, compared as log-odds",
            "threshold_log_odds": exceed["threshold"], "threshold": float(_probability(exceed["threshold"])),
            "quantile": config.reid_quantile, "rate": exceed["rate"], "n_reidentified": exceed["count"],
            "expected_rate_new_people": exceed["expected_rate"], "p_value": exceed["p_value"],
            "threshold_order": exceed["order"],
            "synthetic_confidence": distance_summary(syn_conf),
            "holdout_confidence": distance_summary(_probability(ref.group_log_odds.ravel())),
            "attributed": attributed, "chance": 1.0 / len(train_names),
            "leak_control": _leak_control(kept, labels, syn_top1, train_names),
        },
        # Kept for the figure (identity_distances.png), dropped before the JSON is written.
        "_plot": {"synthetic_distance": syn_distance, "holdout_group_distance": ref.group_distance,
                  "holdout_distance": ref.distance, "synthetic_log_odds": syn_log_odds,
                  "holdout_group_log_odds": ref.group_log_odds, "holdout_log_odds": ref.log_odds},
    }


def _probability(log_odds: Any) -> Any:
    """Top-1 probability from its log-odds."""
    return 1.0 / (1.0 + np.exp(-np.asarray(log_odds, dtype=np.float64)))


def _leak_control(kept: np.ndarray, labels: IdentityLabels, top1: np.ndarray, train_names: list[str]
                  ) -> dict[str, Any] | None:
    """Accuracy of naming the subject a ``train:<subject>`` identity was conditioned on, vs chance."""
    from scipy.stats import binom

    rows = [j for j, name in enumerate(kept) if labels.kinds[str(name)] == "leak"]
    if not rows:
        return None
    unknown = sorted({labels.leaked_subjects[str(kept[j])] for j in rows} - set(train_names))
    if unknown:
        logger.warning("Identities conditioned on %s, which are not among the training subjects %s: left out of the "
                       "leak-control accuracy.", unknown, train_names)
    rows = [j for j in rows if labels.leaked_subjects[str(kept[j])] in train_names]
    chance = 1.0 / len(train_names)
    if not rows:
        return {"n": 0, "accuracy": None, "chance": chance, "p_value": None, "unknown_subjects": unknown}
    correct = int(sum(train_names[top1[j]] == labels.leaked_subjects[str(kept[j])] for j in rows))
    return {"n": len(rows), "correct": correct, "accuracy": correct / len(rows), "chance": chance,
            # One-sided binomial test: P(at least this many right by guessing).
            "p_value": float(binom.sf(correct - 1, len(rows), chance)), "unknown_subjects": unknown}


def identity_checks(block: dict[str, Any] | None, config: Any) -> dict[str, dict[str, Any]]:
    """The identity checks of the pass rule; each is ``{"passed", "value", "bound", "rule"}``.

    ``passed`` is None (not deciding) when the block was skipped, and for the rank test when it
    cannot reach ``alpha`` with the numbers of identities and held-out subjects at hand.
    """
    names = ("identity_distance_median", "identity_distance_rank", "reidentification_rate")
    if not block or block.get("skipped") or "distance_test" not in block:
        reason = (block or {}).get("skipped", "identity_privacy.enabled=false or the identity encoder is disabled")
        return {name: {"passed": None, "value": None, "bound": None, "rule": f"not run: {reason}"} for name in names}
    test, reid = block["distance_test"], block["reidentification"]
    lower = test["holdout_median_lower_bound"]
    bound = (1.0 - config.tolerance) * lower["value"]
    checks = {"identity_distance_median": {
        "passed": bool(test["synthetic_median"] >= bound), "value": test["synthetic_median"], "bound": bound,
        "rule": f"median identity distance to the nearest training subject >= (1 - {config.tolerance}) x the "
                f"held-out subjects' median lower bound (order statistic {lower['order']} of {lower['k']}, "
                f"confidence {lower['confidence']:.3g})"}}
    rank = test["rank_test"]
    if rank["min_attainable_p"] >= config.alpha:
        checks["identity_distance_rank"] = {
            "passed": None, "value": rank["p_value"], "bound": config.alpha,
            "rule": f"not decided: with {rank['n_synthetic']} identities and {rank['n_holdout']} held-out subjects "
                    f"the one-sided rank test cannot reach p < {config.alpha} (smallest p "
                    f"{rank['min_attainable_p']:.3g})"}
    else:
        checks["identity_distance_rank"] = {
            "passed": bool(rank["p_value"] >= config.alpha), "value": rank["p_value"], "bound": config.alpha,
            "rule": "one-sided Mann-Whitney p (synthetic identities closer than held-out subjects) >= alpha"}
    # Failing needs both: a rate above the bound (a large effect) and one that new people would
    # reach by chance with probability < alpha (not luck of a few identities).
    checks["reidentification_rate"] = {
        "passed": bool(reid["rate"] <= config.max_reid_rate or reid["p_value"] >= config.alpha),
        "value": reid["rate"], "bound": config.max_reid_rate,
        "rule": f"share of identities attributed to a training subject more confidently than the "
                f"{config.reid_quantile:g} quantile of held-out subjects (new people: "
                f"{reid['expected_rate_new_people']:.3g} expected) <= bound, or not significant (exact p "
                f"{reid['p_value']:.3g} >= {config.alpha})"}
    return checks


def save_identity_figure(fname: str | os.PathLike, block: dict[str, Any], *, tolerance: float) -> Path:
    """Draw ``identity_distances.png``: identity distances and re-identification confidences, synthetic vs held-out.

    Parameters
    ----------
    fname : path-like
        The PNG to write.
    block : dict
        A computed ``identity_privacy`` block, still holding its ``_plot`` arrays.
    tolerance : float
        The rule's tolerance, to draw the median bound.

    Returns
    -------
    fname : Path
    """
    from matplotlib.figure import Figure

    plot = block["_plot"]
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_d, ax_c = fig.subplots(1, 2)
    hold_groups = plot["holdout_group_distance"].ravel()
    bins = np.linspace(0.0, max(float(np.max(hold_groups)), float(np.max(plot["synthetic_distance"]))) * 1.05 + 1e-6,
                       31)
    # Densities, so a corpus of 500 identities and 4 held-out people compare on one axis.
    ax_d.hist(hold_groups, bins=bins, density=True, alpha=0.5, color="tab:blue",
              label=f"held-out frame groups ({len(plot['holdout_distance'])} subjects)")
    ax_d.hist(plot["synthetic_distance"], bins=bins, density=True, alpha=0.5, color="tab:red",
              label=f"synthetic identities (n={len(plot['synthetic_distance'])})")
    for i, value in enumerate(plot["holdout_distance"]):
        ax_d.axvline(value, color="tab:blue", lw=1.5,
                     label="held-out subject (median of its groups)" if i == 0 else None)
    lower = block["distance_test"]["holdout_median_lower_bound"]["value"]
    ax_d.axvline((1 - tolerance) * lower, color="black", ls="--", label="bound on the synthetic median")
    ax_d.axvline(block["distance_test"]["synthetic_median"], color="tab:red", lw=2, label="synthetic median")
    ax_d.set(xlabel="distance to the nearest training subject (identity embedding, chord 0-2)", ylabel="density",
             title="Are the synthetic people new?")
    ax_d.legend(fontsize=7)
    both = np.concatenate([plot["holdout_group_log_odds"].ravel(), plot["synthetic_log_odds"]])
    cbins = np.linspace(float(both.min()), float(both.max()) + 1e-6, 31)
    ax_c.hist(plot["holdout_group_log_odds"].ravel(), bins=cbins, density=True, alpha=0.5, color="tab:blue",
              label="held-out frame groups")
    ax_c.hist(plot["synthetic_log_odds"], bins=cbins, density=True, alpha=0.5, color="tab:red",
              label="synthetic identities")
    reid = block["reidentification"]
    ax_c.axvline(reid["threshold_log_odds"], color="black", ls="--",
                 label=f"re-identified above ({reid['quantile']:g} quantile of held-out subjects)")
    ax_c.set(xlabel="top-1 log-odds of 'which training subject is this?'", ylabel="density",
             title=f"Re-identified {reid['rate']:.2f} (new people: {reid['expected_rate_new_people']:.2f})")
    ax_c.legend(fontsize=7)
    fname = Path(fname)
    fig.savefig(fname, dpi=100)
    return fname
