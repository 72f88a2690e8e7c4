"""blendkit.typed_config: finite numbers only, and config files that must hold a JSON object."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from blendkit.limits import Limits
from blendkit.shard_config import ShardConfig
from blendkit.typed_config import ConfigError, apply_overrides, from_dict, read_json_object


@dataclass(frozen=True)
class Section:
    rate: float = 1.0
    limits: Limits = Limits()


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_from_dicts_and_overrides(value):
    with pytest.raises(ConfigError, match="^rate: expected a finite number"):
        from_dict(Section, {"rate": value})
    with pytest.raises(ConfigError, match="^rate: expected a finite number"):
        apply_overrides(Section(), [f"rate={value}"])
    with pytest.raises(ConfigError, match="^fps: expected a finite number"):
        from_dict(ShardConfig, {"source": "a", "out": "b", "fps": value})
    with pytest.raises(ConfigError, match="^fps: must be a finite number"):  # built directly
        ShardConfig(source="a", out="b", fps=value)


def test_sections_must_be_mappings_and_limits_positive():
    with pytest.raises(ConfigError, match="^limits: expected a mapping"):
        from_dict(Section, {"limits": 5})
    with pytest.raises(ConfigError, match="Section: expected a mapping, got list"):
        from_dict(Section, [1, 2])
    with pytest.raises(ConfigError, match="limits.max_pixels: must be positive"):
        from_dict(Section, {"limits": {"max_pixels": 0}})
    assert from_dict(Section, {"limits": {"max_frames": 7}}).limits.max_frames == 7


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[1, 2]", "a config must be a JSON object, got list"),
        (b"3", "a config must be a JSON object, got int"),
        (b'"text"', "a config must be a JSON object, got str"),
        (bytes(range(256)), "not a JSON config"),
        (b"\xff\xfe\x00garbage", "not a JSON config"),
        (b"{", "not a JSON config"),
        (b"[" * 100_000, "not a JSON config"),
    ],
)
def test_config_files_must_hold_a_json_object(tmp_path, content, message):
    path = tmp_path / "c.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        read_json_object(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="cannot read config"):
        read_json_object(tmp_path / "absent.json")
    path.write_text('{"fps": 30}')
    assert read_json_object(path) == {"fps": 30}
