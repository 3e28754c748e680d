"""The spotting config (configs/spot/*.yaml): loading, overrides, validation, and the tuning record."""

from __future__ import annotations

import pytest

from acquisition.annotate.spot_config import SpotConfig, load_spot_config
from acquisition.utils.config import CONFIG_DIR, ConfigError


def test_every_shipped_config_loads():
    names = sorted(p.stem for p in (CONFIG_DIR / "spot").glob("*.yaml"))
    assert {"default", "baseline", "emg"} <= set(names)
    for name in names:
        assert isinstance(load_spot_config(name), SpotConfig)


def test_default_has_every_module_on_and_baseline_none():
    default, baseline = load_spot_config("default"), load_spot_config("baseline")
    assert default.blinks.enabled and default.head_motion.enabled and default.talking.enabled
    assert not default.emg.enabled and load_spot_config("emg").emg.enabled
    assert not (baseline.blinks.enabled or baseline.head_motion.enabled or baseline.talking.enabled
                or baseline.emg.enabled)


def test_tuning_subjects_are_never_the_scoring_subjects():
    # benchmarks/spotting_eval.py scores on subjects (identity_seed and rig seed) 100-109.
    for name in ("default", "baseline", "emg"):
        tuning = load_spot_config(name).tuning
        assert tuning.subjects and not set(tuning.subjects) & set(range(100, 110))
        assert not set(tuning.seeds) & set(range(100, 110))


def test_overrides_and_errors():
    config = load_spot_config("default", ["high=7.5", "talking.enabled=false", "blinks.aus=[7]"])
    assert config.high == 7.5 and not config.talking.enabled and config.blinks.aus == [7]
    with pytest.raises(ConfigError, match="hihg"):
        load_spot_config("default", ["hihg=5"])
    with pytest.raises(ConfigError, match="low < high"):
        load_spot_config("default", ["low=8", "high=6"])
    with pytest.raises(ConfigError, match="band_hz"):
        load_spot_config("default", ["talking.band_hz=[8,3]"])
    with pytest.raises(ConfigError, match="Unknown spot config 'nope'.*baseline"):
        load_spot_config("nope")
