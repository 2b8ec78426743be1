"""``metrics.jsonl`` on resume: records past the checkpoint are dropped by a rename (never a half-written file),
and a torn last line from a killed run is dropped, not fatal."""

from __future__ import annotations

import json

import pytest

from resrl.trainer.logs import RunLogger, read_records


def test_resume_keeps_records_up_to_the_step_and_drops_a_torn_line(tmp_path):
    logger = RunLogger(tmp_path, tensorboard=False)
    for step in (1, 2, 3):
        logger.write("train", step, {"loss": float(step)})
    logger.close()
    with (tmp_path / "metrics.jsonl").open("a") as fh:
        fh.write('{"kind": "train", "step": 4, "lo')  # killed mid-write
    assert [r["step"] for r in read_records(tmp_path / "metrics.jsonl")] == [1, 2, 3]
    RunLogger(tmp_path, tensorboard=False, resume_step=2).close()
    assert [r["step"] for r in read_records(tmp_path / "metrics.jsonl")] == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]  # no temp file left


def test_a_corrupt_line_before_the_end_is_an_error(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("not json\n" + json.dumps({"kind": "train", "step": 1}) + "\n")
    with pytest.raises(ValueError, match="line 1 is not JSON"):
        read_records(path)
