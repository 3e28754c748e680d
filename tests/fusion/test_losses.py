"""Contrastive losses against slow numpy references written from the papers' formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fusion.losses import MultiViewContrastiveLoss, cross_modal_infonce, near_time_mask


def _normalize(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _ntxent_manual(a, b, t, near=None):
    """SimCLR NT-Xent: 2n anchors, each with its partner as positive and the 2n-2 others as negatives.

    ``near`` (n, n) bool: moments that are not each other's negatives (in either view).
    """
    z = _normalize(np.concatenate([a, b]))
    n = len(a)
    sim = z @ z.T / t
    loss = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        others = [j for j in range(2 * n) if j != i and (j == pos or near is None or not near[i % n, j % n])]
        loss += -sim[i, pos] + np.log(np.sum(np.exp(sim[i, others])))
    return loss / (2 * n)


def _infonce_manual(a, b, scale, valid, neg_mask):
    a, b = _normalize(a), _normalize(b)
    sim = scale * a @ b.T
    losses = []
    for i in np.flatnonzero(valid):
        for s in (sim, sim.T):
            cols = [j for j in np.flatnonzero(valid) if j == i or not neg_mask[i, j]]
            losses.append(-s[i, i] + np.log(np.sum(np.exp(s[i, cols]))))
    return np.sum(losses) / (2 * valid.sum())


@pytest.mark.parametrize("n,d,t", [(4, 8, 0.1), (9, 16, 0.5), (16, 3, 1.0)])
def test_ntxent_pair_matches_reference(n, d, t):
    rng = np.random.default_rng(n)
    a, b = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    loss_fn = MultiViewContrastiveLoss(["x", "y"], kind="ntxent", temperature=t)
    ones = torch.ones(n, dtype=torch.bool)
    loss, _ = loss_fn({"x": torch.tensor(a), "y": torch.tensor(b)}, {"x": ones, "y": ones})
    assert loss.item() == pytest.approx(_ntxent_manual(a, b, t), rel=1e-5)


@pytest.mark.parametrize("n,d,scale", [(5, 8, 10.0), (12, 4, 1.0), (7, 32, 50.0)])
def test_infonce_matches_reference_with_masks(n, d, scale):
    rng = np.random.default_rng(n)
    a, b = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    valid = rng.random(n) > 0.25
    valid[:2] = True
    session = rng.integers(0, 2, n)
    times = rng.random(n) * 3
    neg = near_time_mask(torch.tensor(session), torch.tensor(times), 0.5).numpy()
    got = cross_modal_infonce(torch.tensor(a), torch.tensor(b), torch.tensor(scale), torch.tensor(valid),
                              torch.tensor(neg))
    assert got.item() == pytest.approx(_infonce_manual(a, b, scale, valid, neg), rel=1e-6)
    swapped = cross_modal_infonce(torch.tensor(b), torch.tensor(a), torch.tensor(scale), torch.tensor(valid),
                                  torch.tensor(neg))
    assert swapped.item() == pytest.approx(got.item(), rel=1e-6)  # symmetric in the two modalities


def test_infonce_analytic_value_for_identical_orthogonal_rows():
    """Orthogonal unit rows, a == b: logits s on the diagonal, 0 elsewhere -> -log(e^s / (e^s + n - 1))."""
    n, s = 6, 5.0
    a = torch.eye(n)
    got = cross_modal_infonce(a, a, torch.tensor(s), torch.ones(n, dtype=torch.bool))
    assert got.item() == pytest.approx(-math.log(math.exp(s) / (math.exp(s) + n - 1)), rel=1e-6)


@pytest.mark.parametrize("kind", ["ntxent", "infonce"])
def test_multiview_loss_masks_and_keeps_every_encoder_in_the_graph(kind):
    torch.manual_seed(0)
    mods = ["rgb", "depth", "emg", "eeg"]
    z = {m: torch.randn(8, 16, requires_grad=True) for m in mods}
    avail = {m: torch.ones(8, dtype=torch.bool) for m in mods}
    avail["eeg"] = torch.zeros(8, dtype=torch.bool)           # missing in the whole batch
    avail["depth"][:3] = False                                 # missing for a few samples
    loss_fn = MultiViewContrastiveLoss(mods, kind=kind, temperature=0.2)
    loss, per_pair = loss_fn(z, avail, torch.zeros(8, dtype=torch.long), torch.arange(8) * 1.0)
    assert set(per_pair) == {"rgb-depth", "rgb-emg", "rgb-eeg", "depth-emg", "depth-eeg", "emg-eeg"}
    assert per_pair["rgb-eeg"] == 0 and per_pair["emg-eeg"] == 0
    loss.backward()
    assert z["eeg"].grad is not None and torch.all(z["eeg"].grad == 0)   # ran, weight 0
    assert torch.isfinite(loss)
    if kind == "ntxent":  # the depth pairs use only rows 3..7
        ref = MultiViewContrastiveLoss(["rgb", "depth"], kind=kind, temperature=0.2)
        ones = torch.ones(5, dtype=torch.bool)
        sub, _ = ref({"rgb": z["rgb"][3:], "depth": z["depth"][3:]}, {"rgb": ones, "depth": ones})
        assert per_pair["rgb-depth"].item() == pytest.approx(sub.item(), rel=1e-6)


def test_logit_scale_is_learnable_and_clamped():
    loss_fn = MultiViewContrastiveLoss(["a", "b"], kind="infonce", temperature=0.07, max_logit_scale=100.0)
    assert loss_fn.logit_scale.item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        loss_fn.log_scale.fill_(10.0)
    assert loss_fn.logit_scale.item() == pytest.approx(100.0, rel=1e-5)
    assert [name for name, _ in loss_fn.named_parameters()] == ["log_scale"]


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="kind must be"):
        MultiViewContrastiveLoss(["a", "b"], kind="vicreg")
    with pytest.raises(ValueError, match="at least two modalities"):
        MultiViewContrastiveLoss(["a"])


def test_masked_ntxent_equals_lightly_on_the_kept_rows():
    """Masking (what DDP needs: equal shapes on every rank) gives lightly's loss on the dropped-row batch."""
    from lightly.loss import NTXentLoss

    from fusion.losses import masked_ntxent

    g = torch.Generator().manual_seed(3)
    za, zb = torch.randn(10, 6, generator=g), torch.randn(10, 6, generator=g)
    valid = torch.tensor([1, 1, 0, 1, 0, 1, 1, 1, 0, 1], dtype=torch.bool)
    za.requires_grad_(True)
    got = masked_ntxent(za, zb, valid, 0.2)
    want = NTXentLoss(temperature=0.2)(za[valid], zb[valid])
    torch.testing.assert_close(got, want)
    got.backward()
    assert torch.isfinite(za.grad).all() and za.grad[~valid].abs().max() == 0
    all_rows = torch.ones(10, dtype=torch.bool)
    torch.testing.assert_close(masked_ntxent(za, zb, all_rows, 0.2), NTXentLoss(temperature=0.2)(za, zb))


def test_dcl_masked_equals_lightly_and_multiview_uses_it():
    """``dcl``: lightly's DCLLoss on the kept rows, also through the masked (DDP) path; and it is not NT-Xent."""
    from lightly.loss import DCLLoss, NTXentLoss

    from fusion.losses import masked_ntxent

    g = torch.Generator().manual_seed(4)
    za, zb = torch.randn(9, 5, generator=g), torch.randn(9, 5, generator=g)
    valid = torch.tensor([1, 0, 1, 1, 1, 0, 1, 1, 1], dtype=torch.bool)
    za.requires_grad_(True)
    got = masked_ntxent(za, zb, valid, 0.3, decoupled=True)
    torch.testing.assert_close(got, DCLLoss(temperature=0.3)(za[valid], zb[valid]))
    got.backward()
    assert torch.isfinite(za.grad).all() and za.grad[~valid].abs().max() == 0
    assert abs(got.item() - NTXentLoss(temperature=0.3)(za[valid], zb[valid]).item()) > 1e-3
    loss_fn = MultiViewContrastiveLoss(["a", "b"], kind="dcl", temperature=0.3)
    ones = torch.ones(9, dtype=torch.bool)
    loss, _ = loss_fn({"a": za, "b": zb}, {"a": ones, "b": valid})
    torch.testing.assert_close(loss, DCLLoss(temperature=0.3)(za[valid], zb[valid]))


def test_pair_head_embeddings_are_what_each_pair_term_compares():
    """With ``"a->b"`` keys (pair heads) the a-b term uses them, not the moment embeddings ``z[a]``."""
    from lightly.loss import NTXentLoss

    g = torch.Generator().manual_seed(5)
    z = {k: torch.randn(6, 4, generator=g) for k in ("a", "b", "c", "a->b", "b->a", "a->c", "c->a", "b->c", "c->b")}
    ones = torch.ones(6, dtype=torch.bool)
    loss, per_pair = MultiViewContrastiveLoss(["a", "b", "c"], temperature=0.5)(z, {m: ones for m in "abc"})
    for a, b in (("a", "b"), ("a", "c"), ("b", "c")):
        want = NTXentLoss(temperature=0.5)(z[f"{a}->{b}"], z[f"{b}->{a}"])
        torch.testing.assert_close(per_pair[f"{a}-{b}"], want)
        assert abs(per_pair[f"{a}-{b}"].item() - NTXentLoss(temperature=0.5)(z[a], z[b]).item()) > 1e-3
    torch.testing.assert_close(loss, sum(per_pair.values()) / 3)


def test_near_in_time_windows_are_not_negatives_for_ntxent():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(8, 6)), rng.normal(size=(8, 6))
    session = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    time_s = torch.tensor([0.0, 0.25, 3.0, 9.0, 0.1, 0.2, 5.0, 5.5])
    near = near_time_mask(session, time_s, 1.0).numpy()
    assert near.sum() > 8  # some off-diagonal near-duplicates to mask
    ones = torch.ones(8, dtype=torch.bool)
    z, avail = {"x": torch.tensor(a), "y": torch.tensor(b)}, {"x": ones, "y": ones}
    masked, _ = MultiViewContrastiveLoss(["x", "y"], temperature=0.3, time_tolerance_s=1.0)(z, avail, session, time_s)
    assert masked.item() == pytest.approx(_ntxent_manual(a, b, 0.3, near), rel=1e-6)
    plain, _ = MultiViewContrastiveLoss(["x", "y"], temperature=0.3)(z, avail, session, time_s)
    assert plain.item() == pytest.approx(_ntxent_manual(a, b, 0.3), rel=1e-6)
    assert abs(plain.item() - masked.item()) > 1e-3
    # a tolerance below every gap masks nothing: lightly's value
    tiny, _ = MultiViewContrastiveLoss(["x", "y"], temperature=0.3, time_tolerance_s=0.01)(z, avail, session, time_s)
    assert tiny.item() == pytest.approx(plain.item(), rel=1e-6)
