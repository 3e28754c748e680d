"""YAML configs: every shipped file validates, overrides apply, typos are rejected."""

from __future__ import annotations

import pytest

from acquisition.utils.config import CONFIG_DIR, ConfigError
from synth.rig import load_rig_config


@pytest.mark.parametrize("path", sorted((CONFIG_DIR / "rig").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_rig_configs_validate(path):
    config = load_rig_config(str(path))
    assert config.emg.channels and config.eeg.channels


def test_default_profile_matches_the_spec():
    c = load_rig_config("default")
    assert (c.rgb.width, c.rgb.height, c.rgb.fps) == (640, 480, 30)
    assert (c.depth.width, c.depth.height) == (640, 480)
    assert len(c.emg.channels) == 8 and c.emg.srate_hz == 2000
    assert len(c.eeg.channels) == 32 and c.eeg.srate_hz == 500
    assert c.au.srate_hz == 30


def test_overrides_and_typos():
    c = load_rig_config("light", ["emg.srate_hz=1500", "timeline.micro_fraction=0.9", "eeg.enabled=false"])
    assert c.emg.srate_hz == 1500 and c.timeline.micro_fraction == 0.9 and not c.eeg.enabled
    with pytest.raises(ConfigError, match="emg.srate_hzz|Extra inputs"):
        load_rig_config("light", ["emg.srate_hzz=1000"])
    with pytest.raises(ConfigError, match="Known names"):
        load_rig_config("nosuchprofile")
    with pytest.raises(ConfigError, match="band_hz"):
        load_rig_config("light", ["emg.srate_hz=500"])  # 20-500 Hz band above Nyquist


def test_pretrain_code_defaults_are_default_yaml(tmp_path):
    # One source of the recommended setup: a user YAML that sets one key gets default.yaml for the rest.
    from fusion.config import PretrainConfig, load_pretrain_config

    assert load_pretrain_config("default") == PretrainConfig()
    partial = tmp_path / "mine.yaml"
    partial.write_text("optim:\n  steps: 7\n")
    mine = load_pretrain_config(str(partial))
    assert mine.optim.steps == 7
    assert mine.model == load_pretrain_config("default").model
    assert mine.data == load_pretrain_config("default").data
