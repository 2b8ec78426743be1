"""``resrl train``'s dotted overrides count wherever they stand among the options."""

from __future__ import annotations

import json

import pytest

from resrl.cli import main

CONFIG = "configs/fc_single.yaml"


@pytest.mark.parametrize(
    "argv",
    [
        ["train", CONFIG, "train.steps=3", "--print-config", "optim.lr=0.5"],
        ["train", CONFIG, "--print-config", "train.steps=3", "optim.lr=0.5"],
    ],
)
def test_overrides_before_and_after_options(argv, capsys):
    assert main(argv) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["train"]["steps"] == 3 and cfg["optim"]["lr"] == 0.5


def test_a_stray_argument_is_still_an_error(capsys):
    with pytest.raises(SystemExit):
        main(["train", CONFIG, "--print-config", "--no-such-flag"])
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err
