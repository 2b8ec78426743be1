"""Our checker against BFCL's own (bfcl-eval, in its own venv) over every AST entry and its mutations."""

from __future__ import annotations

import pytest

from resrl_envs.bfcl.data import AST_CATEGORIES, load_entries
from resrl_envs.bfcl.summary import Score, bfcl_summary
from tests.bfcl.differential import run
from tests.bfcl.mutations import mutations

pytestmark = pytest.mark.slow
AST = [c for c, info in AST_CATEGORIES.items() if info.kind == "ast"]


def test_every_entry_gets_at_least_five_mutations(require_bfcl_data: None) -> None:
    for category in AST:
        for entry in load_entries(category):
            kinds = set(mutations(entry, AST_CATEGORIES[category])) - {"canonical"}
            assert len(kinds) >= 5, f"{entry.id}: only {sorted(kinds)}"


def test_agreement_with_bfcl_checker(bfcl_oracle: str) -> None:
    results = run(bfcl_oracle)
    assert set(results) == set(AST)
    lines = [f"{c}: {r.agreement:.4%} of {r.cases}" for c, r in results.items()]
    print("\n".join(lines))
    for category, r in results.items():
        assert r.entries == len(load_entries(category))
        assert r.bfcl_crashes == 0, r.disagreements[:5]
        # Both verdicts occur: the mutations are not all rejected (or all accepted) by BFCL.
        assert 0 < r.valid_bfcl < r.cases, category
        assert r.agreement >= 0.995, (category, r.disagreements[:10])
    cases = sum(r.cases for r in results.values())
    agree = sum(r.agree for r in results.values())
    assert agree / cases >= 0.995
    # The same outputs scored by BFCL and by us give the same per-category accuracy and BFCL summary rows,
    # up to the listed disagreements (docs/bfcl.md).
    theirs = {c: Score(accuracy=r.valid_bfcl / r.cases, count=r.cases, complete=True) for c, r in results.items()}
    ours = {c: Score(accuracy=r.valid_ours / r.cases, count=r.cases, complete=True) for c, r in results.items()}
    for category, r in results.items():
        assert abs(theirs[category].accuracy - ours[category].accuracy) <= len(r.disagreements) / r.cases
    for row, mine in bfcl_summary(ours).items():
        assert abs(mine.accuracy - bfcl_summary(theirs)[row].accuracy) < 1e-3, row
