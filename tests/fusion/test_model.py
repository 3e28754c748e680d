"""Encoders and MultiModalEncoder: shapes, registry, save/load round trip, one encoder alone."""

from __future__ import annotations

import json

import pytest
import torch

from fusion.encoders import ENCODERS, build_encoder
from fusion.model import ModalityEncoder, MultiModalEncoder, pair_embedding

SPECS = {
    "rgb": {"encoder": "tiny3d", "encoder_kwargs": {"in_channels": 3, "width": 4}},
    "depth": {"encoder": "tiny3d", "encoder_kwargs": {"in_channels": 1, "width": 4}},
    "emg": {"encoder": "eegnet", "encoder_kwargs": {"n_chans": 4, "n_times": 200, "kernel": 16}},
    "eeg": {"encoder": "conv1d", "encoder_kwargs": {"n_chans": 3, "n_times": 100, "width": 8}},
}


def _views(b=3):
    g = torch.Generator().manual_seed(0)
    return {"rgb": torch.rand(b, 4, 3, 16, 16, generator=g), "depth": torch.randn(b, 4, 1, 16, 16, generator=g),
            "emg": torch.randn(b, 4, 200, generator=g), "eeg": torch.randn(b, 3, 100, generator=g)}


def test_registry_and_shapes():
    assert {"tiny3d", "r2plus1d_18", "eegnet", "conv1d"} <= set(ENCODERS)
    r = build_encoder("r2plus1d_18", in_channels=1)
    assert r(torch.randn(1, 4, 1, 32, 32)).shape == (1, 512)
    with pytest.raises(ValueError, match="Unknown encoder"):
        build_encoder("resnet9000")
    with pytest.raises(ValueError, match=r"shape \(B, 4, n_times\)"):
        build_encoder("eegnet", n_chans=4, n_times=200)(torch.randn(2, 5, 200))


def test_save_load_round_trip_and_single_encoder(tmp_path):
    torch.manual_seed(0)
    model = MultiModalEncoder(SPECS, hidden_dim=16, embed_dim=8).eval()
    views = _views()
    with torch.no_grad():
        z = model(views)
    assert {m: tuple(v.shape) for m, v in z.items()} == {m: (3, 8) for m in SPECS}
    assert torch.allclose(z["emg"].norm(dim=1), torch.ones(3))
    model.save_pretrained(tmp_path / "m")
    loaded = MultiModalEncoder.from_pretrained(tmp_path / "m").eval()
    with torch.no_grad():
        z2 = loaded(views)
        alone = ModalityEncoder.from_pretrained(tmp_path / "m", "eeg").eval()(views["eeg"])
    for m in SPECS:
        torch.testing.assert_close(z[m], z2[m], rtol=0, atol=0)
    torch.testing.assert_close(alone, z["eeg"], rtol=0, atol=0)
    with pytest.raises(KeyError, match="No 'audio' encoder"):
        ModalityEncoder.from_pretrained(tmp_path / "m", "audio")
    with pytest.raises(FileNotFoundError, match="config.json"):
        MultiModalEncoder.from_pretrained(tmp_path)


def test_videomae_encoder_builds_from_config_and_runs():
    """transformers VideoMAEModel from a VideoMAEConfig (random init, no download), fed (B, T, C, H, W) clips."""
    enc = build_encoder("videomae", in_channels=1, image_size=16, clip_frames=4, patch_size=8, hidden_size=32,
                        num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    out = enc(torch.randn(2, 4, 1, 16, 16))
    assert out.shape == (2, 32) == (2, enc.out_dim) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in enc.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="divisible by patch_size"):
        build_encoder("videomae", image_size=20, patch_size=8)


def test_frames2d_keeps_time_bins_and_tells_when_something_happened():
    """The same event early or late in a clip gives different features: the time bins are kept."""
    torch.manual_seed(0)
    enc = build_encoder("frames2d", in_channels=1, width=4, n_bins=4).eval()
    clip = torch.zeros(1, 8, 1, 16, 16)
    early, late = clip.clone(), clip.clone()
    early[:, 1] = 1.0   # a "blink" in frame 1 ...
    late[:, 6] = 1.0    # ... or in frame 6
    with torch.no_grad():
        a, b = enc(early), enc(late)
    assert a.shape == (1, enc.out_dim) == (1, 8 * 4 * 4)
    assert not torch.allclose(a, b, atol=1e-4)
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        enc(torch.zeros(1, 1, 16, 16))


def test_pair_heads_give_one_embedding_per_partner_and_round_trip(tmp_path):
    torch.manual_seed(0)
    model = MultiModalEncoder(SPECS, hidden_dim=16, embed_dim=8, pair_heads=True).eval()
    views = _views()
    with torch.no_grad():
        z = model(views)
    pairs = {f"{a}->{b}" for a in SPECS for b in SPECS if a != b}
    assert set(z) == set(SPECS) | pairs
    assert all(v.shape == (3, 8) and torch.allclose(v.norm(dim=1), torch.ones(3)) for v in z.values())
    # the heads differ: a modality's embedding for one partner is not its embedding for another
    assert not torch.allclose(z["rgb->depth"], z["rgb->emg"])
    assert pair_embedding(z, "rgb", "emg") is z["rgb->emg"]
    shared = MultiModalEncoder(SPECS, hidden_dim=16, embed_dim=8).eval()
    with torch.no_grad():
        zs = shared(views)
    assert pair_embedding(zs, "rgb", "emg") is zs["rgb"]
    model.save_pretrained(tmp_path / "m")
    loaded = MultiModalEncoder.from_pretrained(tmp_path / "m").eval()
    alone = ModalityEncoder.from_pretrained(tmp_path / "m", "emg").eval()
    with torch.no_grad():
        z2, ze = loaded(views), alone.embed(views["emg"])
    for key in z:
        torch.testing.assert_close(z[key], z2[key], rtol=0, atol=0)
    torch.testing.assert_close(ze["rgb"], z["emg->rgb"], rtol=0, atol=0)
    torch.testing.assert_close(ze[""], z["emg"], rtol=0, atol=0)


def _save_version1(model: MultiModalEncoder, directory, *, torch_save: bool = False):
    """What MultiModalEncoder.save_pretrained wrote before the shared model folder (runs/<run>/model)."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(model.config, indent=2))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if torch_save:
        torch.save(state, directory / "model.pt")
    else:
        save_file(state, directory / "model.safetensors")
    return directory


def test_saved_folder_is_the_shared_model_folder(tmp_path):
    from acquisition.utils.model_folder import read_model_folder

    model = MultiModalEncoder(SPECS, hidden_dim=16, embed_dim=8)
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["kind"] == "multimodal-encoder" and config["format_version"] == 2
    assert list(config["modalities"]) == list(SPECS) and config["pair_heads"] is False
    assert [p.name for p in read_model_folder(tmp_path / "m").weight_files()] == ["model.safetensors"]


@pytest.mark.parametrize("torch_save", [False, True])
def test_version1_folder_loads_and_migrates(tmp_path, torch_save):
    torch.manual_seed(0)
    model = MultiModalEncoder(SPECS, hidden_dim=16, embed_dim=8, pair_heads=True).eval()
    views = _views()
    with torch.no_grad():
        z = model(views)
    old = _save_version1(model, tmp_path / "run" / "model", torch_save=torch_save)
    loaded = MultiModalEncoder.from_pretrained(old).eval()
    with torch.no_grad():
        z_old, alone = loaded(views), ModalityEncoder.from_pretrained(old, "eeg").eval()(views["eeg"])
    for key in z:
        torch.testing.assert_close(z_old[key], z[key], rtol=0, atol=0)
    torch.testing.assert_close(alone, z["eeg"], rtol=0, atol=0)
    # migration: load, save into the same folder; the version-1 weights file is gone, the model the same
    loaded.save_pretrained(old)
    assert sorted(p.name for p in old.iterdir()) == ["config.json", "weights"]
    with torch.no_grad():
        z_new = MultiModalEncoder.from_pretrained(old).eval()(views)
    for key in z:
        torch.testing.assert_close(z_new[key], z[key], rtol=0, atol=0)


def test_version1_folder_before_pair_heads_loads_without_them(tmp_path):
    model = MultiModalEncoder(SPECS, hidden_dim=16, embed_dim=8)
    old = _save_version1(model, tmp_path / "m")
    config = json.loads((old / "config.json").read_text())
    del config["pair_heads"]
    (old / "config.json").write_text(json.dumps(config))
    assert MultiModalEncoder.from_pretrained(old).config["pair_heads"] is False


def test_from_pretrained_refuses_other_folders(tmp_path):
    from acquisition.utils.model_folder import prepare_weights_dir, write_model_config

    prepare_weights_dir(tmp_path / "gan")
    (tmp_path / "gan" / "weights" / "generator.safetensors").write_bytes(b"x")
    write_model_config(tmp_path / "gan", "gan", {"image_size": 32})
    with pytest.raises(ValueError, match="holds a 'gan' model, not 'multimodal-encoder'"):
        MultiModalEncoder.from_pretrained(tmp_path / "gan")
    with pytest.raises(ValueError, match="holds a 'gan' model"):
        ModalityEncoder.from_pretrained(tmp_path / "gan", "emg")
    model = MultiModalEncoder(SPECS, hidden_dim=16, embed_dim=8)
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "dropout": 0.1}))
    with pytest.raises(ValueError, match=r"does not describe a MultiModalEncoder: unknown keys \['dropout'\]"):
        MultiModalEncoder.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    (tmp_path / "m" / "weights" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="holds no weights"):
        MultiModalEncoder.from_pretrained(tmp_path / "m")
