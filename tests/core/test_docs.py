"""The "write your own environment" guide runs as written, and its environment is at most 60 lines."""

from __future__ import annotations

from tests.core.conftest import DOC, doc_blocks


def test_guide_environment_fits_in_60_lines() -> None:
    code = [line for line in doc_blocks()[0].splitlines() if line.strip()]
    assert len(code) <= 60, f"{DOC.name}: the example env is {len(code)} lines"


def test_guide_runs_end_to_end(capsys) -> None:
    namespace: dict = {}
    for block in doc_blocks():
        exec(compile(block, str(DOC), "exec"), namespace)  # our own documentation, not model output
    assert capsys.readouterr().out.strip().endswith("6")
