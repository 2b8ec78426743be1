"""Config loading: overrides, clear errors for bad keys and values, and the shipped configs validate."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from resrl.cli import main
from resrl.trainer.config import ConfigError, apply_overrides, load_config, validate_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


MINIMAL = {"model": {"path": "m"}, "data": {"envs": ["fc/simple"]}}


def test_overrides_take_yaml_types(tmp_path):
    cfg = load_config(_write(tmp_path, MINIMAL), ["algo.scheme=nsr", "optim.lr=3e-4", "train.plots=false"])
    assert cfg.algo.scheme == "nsr"
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.train.plots is False
    assert cfg.data.envs == ["fc/simple"]


def test_overrides_do_not_mutate_input():
    raw = {"algo": {"scheme": "grpo"}}
    out = apply_overrides(raw, ["algo.scheme=nsr", "new.section=1"])
    assert raw == {"algo": {"scheme": "grpo"}}
    assert out == {"algo": {"scheme": "nsr"}, "new": {"section": 1}}


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, MINIMAL), ["algo.schem=nsr"])
    assert "algo.schem: unknown key; did you mean algo.scheme?" in str(err.value)


def test_bad_value_is_named_with_what_was_given(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, MINIMAL), ["algo.scheme=ppo", "optim.lr=-1"])
    text = str(err.value)
    assert "algo.scheme" in text and "'ppo'" in text
    assert "optim.lr" in text and "greater than 0" in text


def test_missing_section_and_cross_field_rule():
    with pytest.raises(ConfigError, match=r"data: Field required"):
        validate_config({"model": {"path": "m"}})
    with pytest.raises(ConfigError, match="micro_batch_size must not exceed mini_batch_size"):
        validate_config({**MINIMAL, "optim": {"mini_batch_size": 2, "micro_batch_size": 4}})


def test_malformed_override_and_file(tmp_path):
    with pytest.raises(ConfigError, match=r"must look like section\.key=value"):
        apply_overrides({}, ["algo.scheme"])
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(bad)


def test_cli_reports_config_errors(tmp_path, capsys):
    assert main(["train", str(_write(tmp_path, MINIMAL)), "optim.lrr=1"]) == 2
    assert "optim.lrr: unknown key; did you mean optim.lr?" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    cfg = load_config(path)
    assert cfg.data.envs
