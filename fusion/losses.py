"""Multi-view contrastive losses over every modality pair (CMC "full graph").

``L = mean over pairs (a, b) of L_pair(z_a, z_b)``, each pair computed only on samples where
both modalities are available. Two pair losses:

- ``ntxent`` (default): lightly's :class:`~lightly.loss.NTXentLoss` (intra- and cross-modal
  negatives) on the rows where both views exist;
- ``dcl``: lightly's :class:`~lightly.loss.DCLLoss` (decoupled contrastive learning: NT-Xent
  without the positive in the denominator, so small batches of near-duplicate windows do not
  damp the gradient);
- ``infonce``: symmetric cross-modal InfoNCE (CLIP) with a learnable temperature shared by all
  pairs (logit scale clamped at 100), and same-session windows closer than ``time_tolerance_s``
  masked as negatives (they show nearly the same moment).

Near-in-time negatives: with ``time_tolerance_s > 0``, windows of the same session whose centres
are closer than that show nearly the same moment and are not used as each other's negatives
(every kind; lightly's losses take no mask, so NT-Xent/DCL then go through :func:`masked_ntxent`,
which equals them when nothing is masked).

A pair with fewer than two usable rows contributes ``0 * (sum of its embeddings)``: the encoders
still ran, so the graph is the same every step (what DDP needs).

Under ``torch.distributed`` (world size > 1) negatives come from every rank: lightly's
``NTXentLoss``/``DCLLoss(gather_distributed=True)`` when no row of the pair is missing on any rank, else
:func:`masked_ntxent` / :func:`cross_modal_infonce` on rows gathered with the autograd-aware
``lightly.utils.dist.gather``. Rows are masked, never dropped, so every rank gathers tensors of the
same shape, and each rank's loss is scaled so that the mean over ranks (what DDP's gradient
averaging optimises) equals the single-process loss on the concatenated global batch.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from lightly.loss import DCLLoss, NTXentLoss
from lightly.utils import dist as lightly_dist
from torch import nn

from .model import pair_embedding


def _distributed() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized() and torch_dist.get_world_size() > 1


def _gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """(n, ...) on every rank -> (world * n, ...), gradients flowing back to each rank's rows."""
    return torch.cat(lightly_dist.gather(x.contiguous()), 0)


def _gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """(n, ...) on every rank -> (world * n, ...) for labels and masks (no autograd needed)."""
    # gloo has no bool all_gather: go through uint8
    src = x.to(torch.uint8) if x.dtype == torch.bool else x
    out = [torch.empty_like(src) for _ in range(torch_dist.get_world_size())]
    torch_dist.all_gather(out, src.contiguous())
    res = torch.cat(out, 0)
    return res.bool() if x.dtype == torch.bool else res


def _gather_pair(za: torch.Tensor, zb: torch.Tensor, valid: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int]:
    """Keys of both views and the validity mask from every rank (or this rank's, in one process).

    Returns ``(keys_a, keys_b, valid_all, world_size, offset)``: ``keys_*`` of shape (world * n, d)
    with gradients, ``valid_all`` (world * n,), and ``offset`` = where this rank's rows start.
    """
    if not _distributed():
        return za, zb, valid, 1, 0
    world, offset = torch_dist.get_world_size(), torch_dist.get_rank() * za.shape[0]
    return _gather_with_grad(za), _gather_with_grad(zb), _gather_no_grad(valid), world, offset


def _self_columns(n: int, offset: int, n_total: int, device: torch.device) -> torch.Tensor:
    """Bool (n, n_total), True at (i, offset + i): where each local row meets itself among gathered rows."""
    eye = torch.zeros(n, n_total, dtype=torch.bool, device=device)  # built on `device` (lightly's eye_rank is not)
    idx = torch.arange(n, device=device)
    eye[idx, idx + offset] = True
    return eye


def masked_ntxent(za: torch.Tensor, zb: torch.Tensor, valid: torch.Tensor, temperature: float, *,
                  n_valid_global: int | None = None, decoupled: bool = False,
                  negative_mask: torch.Tensor | None = None) -> torch.Tensor:
    """lightly's NT-Xent (intra- and cross-modal negatives) with missing rows masked instead of dropped.

    Equals ``NTXentLoss(temperature)(za[valid], zb[valid])`` (``decoupled=True``:
    ``DCLLoss(temperature)(za[valid], zb[valid])``); under ``torch.distributed`` the keys
    are gathered from all ranks and the result is scaled so the mean over ranks is the global loss.

    Parameters
    ----------
    za, zb : Tensor, shape (n, d)
        This rank's embeddings of the same n moments (L2-normalised here).
    valid : Tensor of bool, shape (n,)
        Rows where both views exist; other rows are neither anchors nor negatives.
    temperature : float
        Softmax temperature.
    n_valid_global : int | None
        Valid rows over all ranks (the caller already all-reduced it); computed if None.
    decoupled : bool
        DCL: the positive is left out of the denominator (``-s_pos + logsumexp(s_neg)``).
    negative_mask : Tensor of bool, shape (n, N) | None
        True where moment j must not be a negative of moment i (near-duplicates), in either view;
        ``N = n * world_size`` (columns index the rows gathered from all ranks); the diagonal is ignored.

    Returns
    -------
    loss : Tensor, scalar
        Mean over the ``2 * n_valid`` anchors of cross-entropy against ``2 * n_valid - 2`` negatives
        (times ``world_size * local share`` under DDP, see above).
    """
    za, zb = F.normalize(za, dim=1), F.normalize(zb, dim=1)
    n = za.shape[0]
    keys_a, keys_b, valid_all, world, offset = _gather_pair(za, zb, valid)
    n_all = keys_a.shape[0]
    anchors = torch.cat([za, zb])                                   # (2n, d)
    keys = torch.cat([keys_a, keys_b])                              # (2N, d)
    logits = anchors @ keys.T / temperature                         # (2n, 2N)
    own = _self_columns(n, offset, n_all, za.device)                # (n, N)
    no = torch.zeros_like(own)
    is_self = torch.cat([torch.cat([own, no], 1), torch.cat([no, own], 1)])        # (2n, 2N)
    is_positive = torch.cat([torch.cat([no, own], 1), torch.cat([own, no], 1)])    # partner in the other view
    key_valid = torch.cat([valid_all, valid_all]).bool()
    rows = torch.cat([valid, valid]).bool()
    if negative_mask is not None:  # near-duplicates are dropped like invalid keys (never the positive)
        near = negative_mask.bool() & ~own
        near = torch.cat([torch.cat([near, near], 1), torch.cat([near, near], 1)])
        is_self = is_self | near
    if decoupled:
        positive = (logits * is_positive).sum(1)
        # an invalid anchor keeps its other (finite) columns so its row is never all -inf (NaN gradients)
        drop = torch.where(rows[:, None], is_self | is_positive | ~key_valid[None, :], is_self)
        per_row = torch.logsumexp(logits.masked_fill(drop, float("-inf")), dim=1) - positive
    else:
        # an invalid anchor keeps its (invalid) positive so its row is never all -inf (NaN gradients)
        logits = logits.masked_fill(is_self | (~key_valid[None, :] & ~is_positive), float("-inf"))
        labels = is_positive.float().argmax(1)
        per_row = F.cross_entropy(logits, labels, reduction="none")
    per_row = torch.where(rows, per_row, torch.zeros_like(per_row))  # invalid anchors may be NaN
    if n_valid_global is None:
        n_valid_global = int(valid_all.sum())
    return per_row.sum() * world / max(2 * n_valid_global, 1)


def cross_modal_infonce(za: torch.Tensor, zb: torch.Tensor, logit_scale: torch.Tensor, valid: torch.Tensor,
                        negative_mask: torch.Tensor | None = None, *,
                        n_valid_global: int | None = None) -> torch.Tensor:
    """Symmetric InfoNCE between two modalities, cross-modal negatives only.

    Parameters
    ----------
    za, zb : Tensor, shape (n, d)
        Embeddings of the same n moments (L2-normalised here); this rank's rows under DDP.
    logit_scale : Tensor, scalar
        Multiplies the cosine similarities (1 / temperature).
    valid : Tensor of bool, shape (n,)
        Rows where both views exist; other rows are neither anchors nor negatives.
    negative_mask : Tensor of bool, shape (n, N) | None
        True where pair (i, j) must not be used as a negative (near-duplicates); the positive is
        ignored. ``N = n * world_size``: columns index the rows gathered from all ranks.
    n_valid_global : int | None
        Under DDP, the valid rows over all ranks (the caller already all-reduced it); computed if None.

    Returns
    -------
    loss : Tensor, scalar
        ``(CE(a->b) + CE(b->a)) / 2`` averaged over valid rows (under DDP: this rank's share,
        scaled so that the mean over ranks is the global average).
    """
    za, zb = F.normalize(za, dim=1), F.normalize(zb, dim=1)
    n = za.shape[0]
    keys_a, keys_b, valid_all, world, offset = _gather_pair(za, zb, valid)
    logits_ab = logit_scale * za @ keys_b.T                        # (n, N)
    logits_ba = logit_scale * zb @ keys_a.T                        # (n, N)
    own = _self_columns(n, offset, keys_a.shape[0], za.device)
    drop = ~(valid.bool()[:, None] & valid_all.bool()[None, :])    # invalid rows/columns
    if negative_mask is not None:
        drop = drop | negative_mask
    drop = drop & ~own
    labels = torch.arange(n, device=za.device) + offset
    loss_ab = F.cross_entropy(logits_ab.masked_fill(drop, float("-inf")), labels, reduction="none")
    loss_ba = F.cross_entropy(logits_ba.masked_fill(drop, float("-inf")), labels, reduction="none")
    per_row = torch.where(valid.bool(), 0.5 * (loss_ab + loss_ba), torch.zeros_like(loss_ab))  # -inf rows: NaN
    if n_valid_global is None:
        n_valid_global = int(valid_all.sum())
    return per_row.sum() * world / max(n_valid_global, 1)


def near_time_mask(session: torch.Tensor, time_s: torch.Tensor, tolerance_s: float,
                   other_session: torch.Tensor | None = None, other_time_s: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """Bool (n, m): same session and ``|t_i - t_j| < tolerance_s`` (diagonal included).

    Rows are ``session``/``time_s`` (n,); columns are ``other_*`` (m,), the same rows if None
    (under DDP: the rows gathered from every rank).
    """
    if other_session is None or other_time_s is None:
        other_session, other_time_s = session, time_s
    same = session[:, None] == other_session[None, :]
    return same & ((time_s[:, None] - other_time_s[None, :]).abs() < tolerance_s)


class MultiViewContrastiveLoss(nn.Module):
    """Sum of pairwise contrastive losses over all modality pairs, with availability masks.

    Parameters
    ----------
    modalities : list of str
        Modalities; every unordered pair is a term (6 for 4 modalities).
    kind : ``"ntxent"`` | ``"dcl"`` | ``"infonce"``
        Pair loss (see the module docstring).
    temperature : float
        NT-Xent temperature, or the initial InfoNCE temperature (learnable).
    time_tolerance_s : float
        Same-session windows whose centres are closer than this are not each other's negatives
        (every kind; 0 disables).
    max_logit_scale : float
        InfoNCE: clamp of ``1 / temperature`` (CLIP uses 100).
    """

    def __init__(self, modalities: list[str], kind: str = "ntxent", temperature: float = 0.1,
                 time_tolerance_s: float = 0.0, max_logit_scale: float = 100.0) -> None:
        super().__init__()
        if kind not in ("ntxent", "dcl", "infonce"):
            raise ValueError(f"kind must be 'ntxent', 'dcl' or 'infonce', got {kind!r}.")
        if len(modalities) < 2:
            raise ValueError(f"A contrastive loss needs at least two modalities, got {modalities}.")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.modalities, self.kind = list(modalities), kind
        self.pairs = list(itertools.combinations(self.modalities, 2))
        self.time_tolerance_s, self.max_log_scale = float(time_tolerance_s), math.log(max_logit_scale)
        if kind in ("ntxent", "dcl"):
            # gather_distributed only acts when world size > 1: single-process runs are unchanged
            loss_class = NTXentLoss if kind == "ntxent" else DCLLoss
            self.ntxent = loss_class(temperature=temperature, gather_distributed=True)
            self.temperature = float(temperature)
        else:
            self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    @property
    def logit_scale(self) -> torch.Tensor | None:
        """InfoNCE: current clamped ``1 / temperature``; None for NT-Xent."""
        if self.kind != "infonce":
            return None
        return self.log_scale.clamp(max=self.max_log_scale).exp()

    def forward(self, z: dict[str, torch.Tensor], available: dict[str, torch.Tensor],
                session: torch.Tensor | None = None, time_s: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss over all pairs.

        Parameters
        ----------
        z : dict of str to Tensor, each (n, d)
            Embeddings per modality (every modality in :attr:`modalities`), and with pair heads
            ``"a->b"`` (see :func:`fusion.model.pair_embedding`).
        available : dict of str to bool Tensor, each (n,)
            Which rows exist per modality.
        session, time_s : Tensor, shape (n,) | None
            Session index and window centre time, for the near-time negative mask.

        Returns
        -------
        loss : Tensor, scalar
            Mean over pairs.
        per_pair : dict of str to Tensor
            ``"a-b"`` -> detached pair loss (0 for a pair with < 2 usable rows).
        """
        distributed = _distributed()
        valid = {(a, b): available[a].bool() & available[b].bool() for a, b in self.pairs}
        # Every rank must take the same branch per pair (the branches differ in collectives), so the
        # decision uses global counts: one all_reduce of (valid, invalid) rows per pair.
        counts = torch.tensor([[int(v.sum()), int((~v).sum())] for v in valid.values()], dtype=torch.long)
        if distributed:
            dev = z[self.modalities[0]].device
            counts = counts.to(dev)
            torch_dist.all_reduce(counts)
            counts = counts.cpu()
        negative_mask = None
        if self.time_tolerance_s > 0 and session is not None and time_s is not None:
            if distributed:  # local rows against the rows of every rank
                negative_mask = near_time_mask(session, time_s, self.time_tolerance_s,
                                               _gather_no_grad(session), _gather_no_grad(time_s))
            else:
                negative_mask = near_time_mask(session, time_s, self.time_tolerance_s)
        total = z[self.modalities[0]].new_zeros(())
        per_pair: dict[str, torch.Tensor] = {}
        for (a, b), (n_valid, n_invalid) in zip(self.pairs, counts.tolist(), strict=True):
            v = valid[(a, b)]
            za, zb = pair_embedding(z, a, b), pair_embedding(z, b, a)
            if n_valid < 2:
                term = 0.0 * (za.sum() + zb.sum())  # keep every encoder (and head) in the graph
                if self.kind == "infonce":
                    term = term + 0.0 * self.log_scale  # ... and the temperature (DDP: no unused parameter)
            elif self.kind != "infonce" and negative_mask is None and n_invalid == 0:
                term = self.ntxent(za, zb)  # lightly, gathering negatives across ranks under DDP
            elif self.kind != "infonce" and negative_mask is None and not distributed:
                term = self.ntxent(za[v], zb[v])  # single process: dropping rows is exact and cheap
            elif self.kind != "infonce":
                term = masked_ntxent(za, zb, v, self.temperature, n_valid_global=n_valid,
                                     decoupled=self.kind == "dcl", negative_mask=negative_mask)
            else:
                term = cross_modal_infonce(za, zb, self.logit_scale, v, negative_mask, n_valid_global=n_valid)
            per_pair[f"{a}-{b}"] = term.detach()
            total = total + term
        return total / len(self.pairs), per_pair
