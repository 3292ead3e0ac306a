from pathlib import Path

import pytest

from spanvla_ros.config import ConfigError, config_from_dict, load_config
from spanvla_ros.eval import ScorerConfig

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_scorer_yaml_is_the_default_config():
    assert load_config(ScorerConfig, ROOT / "config" / "scorer.yaml") == ScorerConfig()


def test_unknown_keys_are_errors_with_the_valid_keys_listed():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['ttc_wieght'\]"):
        config_from_dict(ScorerConfig, {"ttc_wieght": 5.0})
    with pytest.raises(ConfigError, match="tracker"):
        config_from_dict(ScorerConfig, {"tracker": {"gain": 1.0}})


def test_nested_values_and_types_are_checked():
    config = config_from_dict(ScorerConfig, {"comfort": {"max_lon_accel_mps2": 3}, "ttc_lookahead_s": [0, 0.5]})
    assert config.comfort.max_lon_accel_mps2 == 3.0
    assert config.ttc_lookahead_s == (0, 0.5)
    with pytest.raises(ConfigError, match="expected bool"):
        config_from_dict(ScorerConfig, {"human_penalty_filter": "yes"})
    with pytest.raises(ConfigError, match="not found"):
        load_config(ScorerConfig, ROOT / "config" / "missing.yaml")
