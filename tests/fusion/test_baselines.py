"""Baselines of the pretraining evaluation (fusion.baselines): the supervised model's fusion and budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusion.baselines import random_init_model, supervised_scores, train_supervised
from fusion.config import load_pretrain_config
from fusion.evaluate import embed_dataset, evaluate_embeddings
from fusion.model import MultiModalEncoder
from fusion.train import make_dataset, pretrain

from .conftest import write_small_session
from .test_evaluate import MARKERS, _add_markers

TINY = ["data.clip_frames=2", "data.image_size=16", "model.hidden_dim=16", "model.embed_dim=8",
        "model.encoders.rgb.kwargs.width=4", "model.encoders.depth.kwargs.width=4"]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A 6 s hand-made session with expression markers (happiness, surprise, neutral)."""
    folder = tmp_path_factory.mktemp("baselines")
    return _add_markers(write_small_session(folder / "a.h5", duration_s=6.0), MARKERS)


class _EncoderCalls:
    """Counts forward passes of every MultiModalEncoder and the windows they saw (a global module hook)."""

    def __enter__(self):
        self.batches: list[int] = []

        def hook(module, args, output):
            if isinstance(module, MultiModalEncoder) and module.training:
                self.batches.append(len(next(iter(output.values()))))
        self._handle = torch.nn.modules.module.register_module_forward_hook(hook)
        return self

    def __exit__(self, *exc):
        self._handle.remove()


@pytest.mark.slow
def test_supervised_baseline_gets_pretrainings_budget(labelled, tmp_path):
    """Equal budgets: as many training steps of as many windows as pretraining with the same config."""
    config = load_pretrain_config("tiny", [*TINY, "optim.steps=5", "optim.batch_size=4", "checkpoint_every=5"])
    ds = make_dataset([labelled], config, stride_s=0.5)
    with _EncoderCalls() as pre:
        pretrain([labelled], config, tmp_path / "run", progress=False)
    with _EncoderCalls() as sup:
        model = train_supervised(config, ds, label_fraction=0.5, seed=0)
    assert model.steps_trained == config.optim.steps == len(pre.batches) == len(sup.batches) == 5
    assert pre.batches == sup.batches == [config.optim.batch_size] * 5
    longer = config.model_copy(update={"optim": config.optim.model_copy(update={"steps": 7})})
    with _EncoderCalls() as sup:
        assert train_supervised(longer, ds, label_fraction=0.5).steps_trained == 7 == len(sup.batches)


@pytest.mark.slow
def test_supervised_baseline_fuses_like_the_probe(labelled):
    """Heads on standardised embeddings: one per modality and a linear one on their concatenation (ALL)."""
    config = load_pretrain_config("tiny", [*TINY, "optim.steps=3", "optim.batch_size=4"])
    ds = make_dataset([labelled], config, stride_s=0.5)
    model = train_supervised(config, ds, label_fraction=0.5, seed=1)
    mods, dim = model.encoders.modalities, model.encoders.config["embed_dim"]
    assert model.expression["ALL"].in_features == len(mods) * dim
    assert all(model.expression[m.upper()].in_features == dim for m in mods)
    # Known answer: the ALL logits are the linear head of the concatenated standardised embeddings; a modality
    # missing from a window contributes zeros (its training mean), as the probe's fill does.
    batch = torch.utils.data.default_collate([ds[i] for i in range(3)])
    batch["available"]["emg"] = torch.tensor([True, False, True])
    with torch.no_grad():
        z = model.encoders(batch)
        blocks = []
        for i, m in enumerate(mods):
            x = (z[m] - model.feature_mean[i]) / torch.sqrt(model.feature_var[i] + 1e-5)
            blocks.append(x * batch["available"][m][:, None])
        expected = model.expression["ALL"](torch.cat(blocks, 1))
        torch.testing.assert_close(model(batch)["ALL"][0], expected)
        assert (model.features(batch)[mods.index("emg"), 1] == 0).all()
    # the running statistics were learnt from training batches, not left at their initial values
    assert not torch.allclose(model.feature_mean, torch.zeros_like(model.feature_mean))


@pytest.mark.slow
def test_baselines_score_held_out_windows(labelled, tmp_path):
    config = load_pretrain_config("tiny", [*TINY, "optim.steps=25", "optim.batch_size=8"])
    ds = make_dataset([labelled], config, stride_s=0.5)
    model = random_init_model(config, ds)
    emb = embed_dataset(model, ds)
    assert emb["rgb"].shape == (len(ds), 8) and emb["expression"].dtype == object
    report = evaluate_embeddings(emb, model.modalities)
    assert np.isfinite(report["linear_probe"]["ALL"]["expr_acc"])
    supervised = train_supervised(config, ds, label_fraction=1.0, seed=0)
    scores = supervised_scores(supervised, ds)
    assert set(scores) == {"RGB", "DEPTH", "EMG", "EEG", "ALL"}
    # 10 labelled windows seen 20 times each: the fused head must at least fit its own training windows
    assert scores["ALL"]["expr_uar"] > 0.9 and scores["ALL"]["expr_uf1"] > 0.9
    held = make_dataset([write_small_session(tmp_path / "no_eeg.h5", duration_s=3.0, with_eeg=False)], config,
                        stride_s=0.5)
    with pytest.raises(ValueError, match=r"sessions have no \['eeg'\]"):
        supervised_scores(supervised, held)
    with pytest.raises(ValueError, match="no expression labels"):
        train_supervised(config, make_dataset([write_small_session(tmp_path / "b.h5")], config))
