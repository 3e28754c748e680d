"""The model folder shared by fusion and synth: layout, checks with clear errors, version-1 layouts, weights hash."""

from __future__ import annotations

import json

import pytest
import torch

from acquisition.utils.model_folder import FORMAT_VERSION, is_model_folder, load_weights, prepare_weights_dir, \
    read_model_folder, save_safetensors, weights_sha256, write_model_config


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"layer.weight": torch.randn(3, 2, generator=g), "layer.bias": torch.randn(3, generator=g)}


def _save(path, kind="gan", config=None, states=None):
    """What a save_pretrained does: weights first, config.json last."""
    weights = prepare_weights_dir(path)
    for name, state in (states or {"generator": _state()}).items():
        save_safetensors(weights / f"{name}.safetensors", state)
    write_model_config(path, kind, config if config is not None else {"image_size": 32})
    return path


def test_layout_round_trip(tmp_path):
    _save(tmp_path / "m", config={"image_size": 32, "kind": "overridden", "modalities": {"b": 1, "a": 2}})
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    # the header first, then the model's keys in their order (a modality order must survive)
    assert list(config)[:3] == ["format", "format_version", "kind"] and list(config["modalities"]) == ["b", "a"]
    folder = read_model_folder(tmp_path / "m", kind=("diffusion", "gan"))
    assert (folder.kind, folder.format_version) == ("gan", FORMAT_VERSION)
    assert folder.arguments == {"image_size": 32, "modalities": {"b": 1, "a": 2}}
    assert [p.name for p in folder.weight_files()] == ["generator.safetensors"]
    loaded = load_weights(folder, "generator")
    for key, value in _state().items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)
    assert is_model_folder(tmp_path / "m") and not is_model_folder(tmp_path)


def test_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist: no config.json"):
        read_model_folder(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="is not a model folder: no config.json.*save_pretrained"):
        read_model_folder(tmp_path)
    path = _save(tmp_path / "m")
    with pytest.raises(ValueError, match="holds a 'gan' model, not 'multimodal-encoder'"):
        read_model_folder(path, kind="multimodal-encoder")
    with pytest.raises(FileNotFoundError, match="no 'discriminator' weights.*generator.safetensors"):
        load_weights(read_model_folder(path), "discriminator")
    (path / "weights" / "generator.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="holds no weights.*interrupted"):
        read_model_folder(path)

    newer = _save(tmp_path / "newer")
    config = json.loads((newer / "config.json").read_text())
    (newer / "config.json").write_text(json.dumps({**config, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ValueError, match=f"format_version {FORMAT_VERSION + 1}, newer than this emosync reads.*"
                                         "Upgrade emosync"):
        read_model_folder(newer)
    (newer / "config.json").write_text(json.dumps({**config, "format": "diffusers"}))
    with pytest.raises(ValueError, match="format 'diffusers', not 'emosync-model'"):
        read_model_folder(newer)
    (newer / "config.json").write_text(json.dumps({"format": "emosync-model", "format_version": 2}))
    with pytest.raises(ValueError, match="no 'kind'"):
        read_model_folder(newer)
    (newer / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel"}))  # a diffusers component
    with pytest.raises(ValueError, match="does not describe an emosync model.*not a component folder"):
        read_model_folder(newer)
    (newer / "config.json").write_text('{"format": "emosync-model", ')
    with pytest.raises(ValueError, match="not valid JSON.*damaged"):
        read_model_folder(newer)


def test_weights_hash_covers_weights_only(tmp_path):
    a = _save(tmp_path / "a")
    b = _save(tmp_path / "b", config={"image_size": 32, "steps": 7})   # another card, same weights
    (b / "loss.csv").write_text("step,loss\n")                          # logs are not the model
    assert weights_sha256(a) == weights_sha256(b)
    # diffusers' bookkeeping keys do not enter the hash; the rest of its JSON does
    (a / "weights" / "model_index.json").write_text(json.dumps({"unet": 1, "_name_or_path": "/here"}))
    (b / "weights" / "model_index.json").write_text(json.dumps({"_diffusers_version": "0.1", "unet": 1}))
    assert weights_sha256(a) == weights_sha256(b)
    (b / "weights" / "model_index.json").write_text(json.dumps({"unet": 2}))
    assert weights_sha256(a) != weights_sha256(b)
    assert weights_sha256(_save(tmp_path / "c", states={"generator": _state(1)})) != weights_sha256(a)


def test_saving_again_replaces_the_old_weights(tmp_path):
    path = _save(tmp_path / "m", states={"generator": _state(), "discriminator": _state(1)})
    _save(path, kind="diffusion", states={"unet": _state(2)})
    folder = read_model_folder(path)
    assert folder.kind == "diffusion" and [p.name for p in folder.weight_files()] == ["unet.safetensors"]


def _write_version1_encoder(path, state, *, torch_save=False):
    """What fusion's MultiModalEncoder.save_pretrained wrote before the shared layout."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"modalities": {}, "hidden_dim": 4, "embed_dim": 2}, indent=2))
    if torch_save:
        torch.save(state, path / "model.pt")
    else:
        save_safetensors(path / "model.safetensors", state)
    return path


@pytest.mark.parametrize("torch_save", [False, True])
def test_version1_encoder_folder_reads_and_migrates(tmp_path, torch_save):
    path = _write_version1_encoder(tmp_path / "old", _state(), torch_save=torch_save)
    folder = read_model_folder(path, kind="multimodal-encoder")
    assert folder.format_version == 1 and folder.arguments == {"modalities": {}, "hidden_dim": 4, "embed_dim": 2}
    torch.testing.assert_close(load_weights(folder, "model")["layer.bias"], _state()["layer.bias"], rtol=0, atol=0)
    old_hash = weights_sha256(path)
    # migration is loading and saving into the same folder: the old files go
    _save(path, kind="multimodal-encoder", config=folder.arguments, states={"model": load_weights(folder, "model")})
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "weights"]
    assert read_model_folder(path).format_version == FORMAT_VERSION
    if not torch_save:  # the same safetensors file under weights/: the same hash
        assert weights_sha256(path) == old_hash


def test_version1_generator_card_reads_and_migrates(tmp_path):
    path = _save(tmp_path / "m")
    card = json.loads((path / "config.json").read_text())
    # what synth's save_pretrained wrote before: the card as emosync_model.json, the same weights/
    (path / "config.json").rename(path / "emosync_model.json")
    (path / "emosync_model.json").write_text(json.dumps({**card, "format": "emosync-generator", "format_version": 1},
                                                        sort_keys=True))
    old_hash = weights_sha256(path)
    folder = read_model_folder(path, kind="gan")
    assert folder.format_version == 1 and folder.arguments == {"image_size": 32} and is_model_folder(path)
    _save(path, config=folder.arguments)
    assert not (path / "emosync_model.json").exists() and read_model_folder(path).format_version == FORMAT_VERSION
    assert weights_sha256(path) == old_hash
