"""Multi-view contrastive losses over every modality pair (CMC "full graph").

``L = mean over pairs (a, b) of L_pair(z_a, z_b)``, each pair computed only on samples where
both modalities are available. Two pair losses:

- ``ntxent`` (default): lightly's :class:`~lightly.loss.NTXentLoss` (intra- and cross-modal
  negatives) on the rows where both views exist;
- ``infonce``: symmetric cross-modal InfoNCE (CLIP) with a learnable temperature shared by all
  pairs (logit scale clamped at 100), and same-session windows closer than ``time_tolerance_s``
  masked as negatives (they show nearly the same moment).

A pair with fewer than two usable rows contributes ``0 * (sum of its embeddings)``: the encoders
still ran, so the graph is the same every step (what DDP needs).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from lightly.loss import NTXentLoss
from torch import nn


def cross_modal_infonce(za: torch.Tensor, zb: torch.Tensor, logit_scale: torch.Tensor, valid: torch.Tensor,
                        negative_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE between two modalities, cross-modal negatives only.

    Parameters
    ----------
    za, zb : Tensor, shape (n, d)
        Embeddings of the same n moments (L2-normalised here).
    logit_scale : Tensor, scalar
        Multiplies the cosine similarities (1 / temperature).
    valid : Tensor of bool, shape (n,)
        Rows where both views exist; other rows are neither anchors nor negatives.
    negative_mask : Tensor of bool, shape (n, n) | None
        True where pair (i, j) must not be used as a negative (near-duplicates); the diagonal is ignored.

    Returns
    -------
    loss : Tensor, scalar
        ``(CE(a->b) + CE(b->a)) / 2`` averaged over valid rows.
    """
    za, zb = F.normalize(za, dim=1), F.normalize(zb, dim=1)
    logits = logit_scale * za @ zb.T                               # (n, n)
    n = logits.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=logits.device)
    drop = ~(valid[:, None] & valid[None, :])                      # invalid rows/columns
    if negative_mask is not None:
        drop = drop | negative_mask
    logits = logits.masked_fill(drop & ~eye, float("-inf"))
    labels = torch.arange(n, device=logits.device)
    rows = valid.float()
    loss_ab = F.cross_entropy(logits, labels, reduction="none")
    loss_ba = F.cross_entropy(logits.T, labels, reduction="none")
    per_row = torch.where(valid, 0.5 * (loss_ab + loss_ba), torch.zeros_like(loss_ab))  # -inf rows would be NaN
    return (per_row * rows).sum() / rows.sum().clamp(min=1.0)


def near_time_mask(session: torch.Tensor, time_s: torch.Tensor, tolerance_s: float) -> torch.Tensor:
    """Bool (n, n): same session and ``|t_i - t_j| < tolerance_s`` (diagonal included)."""
    same = session[:, None] == session[None, :]
    return same & ((time_s[:, None] - time_s[None, :]).abs() < tolerance_s)


class MultiViewContrastiveLoss(nn.Module):
    """Sum of pairwise contrastive losses over all modality pairs, with availability masks.

    Parameters
    ----------
    modalities : list of str
        Modalities; every unordered pair is a term (6 for 4 modalities).
    kind : ``"ntxent"`` | ``"infonce"``
        Pair loss (see the module docstring).
    temperature : float
        NT-Xent temperature, or the initial InfoNCE temperature (learnable).
    time_tolerance_s : float
        InfoNCE: same-session windows whose centres are closer than this are not negatives.
        0 disables. (lightly's NT-Xent has no mask argument: not applied there.)
    max_logit_scale : float
        InfoNCE: clamp of ``1 / temperature`` (CLIP uses 100).
    """

    def __init__(self, modalities: list[str], kind: str = "ntxent", temperature: float = 0.1,
                 time_tolerance_s: float = 0.0, max_logit_scale: float = 100.0) -> None:
        super().__init__()
        if kind not in ("ntxent", "infonce"):
            raise ValueError(f"kind must be 'ntxent' or 'infonce', got {kind!r}.")
        if len(modalities) < 2:
            raise ValueError(f"A contrastive loss needs at least two modalities, got {modalities}.")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.modalities, self.kind = list(modalities), kind
        self.pairs = list(itertools.combinations(self.modalities, 2))
        self.time_tolerance_s, self.max_log_scale = float(time_tolerance_s), math.log(max_logit_scale)
        if kind == "ntxent":
            self.ntxent = NTXentLoss(temperature=temperature)
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
            Embeddings per modality (every modality in :attr:`modalities`).
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
        negative_mask = None
        if self.kind == "infonce" and self.time_tolerance_s > 0 and session is not None and time_s is not None:
            negative_mask = near_time_mask(session, time_s, self.time_tolerance_s)
        total = z[self.modalities[0]].new_zeros(())
        per_pair: dict[str, torch.Tensor] = {}
        for a, b in self.pairs:
            valid = available[a].bool() & available[b].bool()
            if int(valid.sum()) < 2:
                term = 0.0 * (z[a].sum() + z[b].sum())  # keep every encoder in the graph
            elif self.kind == "ntxent":
                term = self.ntxent(z[a][valid], z[b][valid])
            else:
                term = cross_modal_infonce(z[a], z[b], self.logit_scale, valid, negative_mask)
            per_pair[f"{a}-{b}"] = term.detach()
            total = total + term
        return total / len(self.pairs), per_pair
