"""BFCL's multi-turn domains driven by parsed calls, against BFCL's own eval-based executor."""

from __future__ import annotations

import pytest

from resrl_envs.bfcl.domains import ERROR_PREFIX, MULTI_TURN_CATEGORIES, CallSyntaxError, DomainSet, parse_calls
from resrl_envs.bfcl.multi_turn import check_trajectory
from tests.bfcl.multi_turn_differential import entries, ours, run, run_checker


def test_calls_are_parsed_never_executed() -> None:
    assert parse_calls("sort('a.txt')") == [("sort", ["a.txt"], {})]
    assert parse_calls("[cd(folder='x'), ls(a=True)]") == [("cd", [], {"folder": "x"}), ("ls", [], {"a": True})]
    for bad in ("__import__('os').system('true')", "cd(folder=open('x').read())", "cd(**{'folder': 'x'})", "cd("):
        with pytest.raises(CallSyntaxError):
            parse_calls(bad)


def test_unknown_method_and_bad_arguments_are_error_texts(require_bfcl_data: None) -> None:
    entry = entries("multi_turn_base")[0]
    domains = DomainSet(entry["involved_classes"], entry["initial_config"])
    assert domains.run("_load_scenario(scenario={})")[0].startswith(ERROR_PREFIX)  # private methods are not offered
    assert domains.run("no_such(x=1)") == [f"{ERROR_PREFIX}name 'no_such' is not defined"]
    assert "unexpected keyword argument" in domains.run("cd(nope='x')")[0]
    assert "document" in domains.run("ls()")[0]


def test_ground_truth_runs_without_errors(require_bfcl_data: None) -> None:
    for category in MULTI_TURN_CATEGORIES:
        for entry in entries(category)[:25]:
            results = ours(entry, category, entry["ground_truth"])["results"]
            assert not [r for turn in results for r in turn if r.startswith(ERROR_PREFIX)], entry["id"]


@pytest.mark.slow
def test_execution_agrees_with_bfcl_executor(bfcl_oracle: str) -> None:
    # Every 4th entry keeps CI short; `python -m tests.bfcl.multi_turn_differential` runs them all (docs/bfcl.md).
    summary = run(bfcl_oracle, stride=4)
    assert set(summary) == set(MULTI_TURN_CATEGORIES)
    for category, s in summary.items():
        assert s["cases"] >= 5 * 48, category  # ground truth + 4 mutations for (nearly) every entry
        assert s["agree"] / s["cases"] >= 0.99, (category, s["disagreements"][:10])


@pytest.mark.slow
def test_trajectory_scores_agree_with_bfcl_multi_turn_checker(bfcl_oracle: str) -> None:
    summary = run_checker(bfcl_oracle)
    assert set(summary) == set(MULTI_TURN_CATEGORIES)
    for category, s in summary.items():
        assert s["crashes"] == 0, s["disagreements"][:5]
        assert 0 < s["valid_bfcl"] < s["cases"], category  # mutations both keep and break trajectories
        assert s["agree"] / s["cases"] >= 0.99, (category, s["disagreements"][:10])


def test_ground_truth_trajectories_are_valid(require_bfcl_data: None) -> None:
    for category in MULTI_TURN_CATEGORIES:
        for entry in entries(category)[:25]:
            turns = [[[c for c in parse_calls(call)] for call in turn] for turn in entry["ground_truth"]]
            assert check_trajectory(entry, category, turns).valid, entry["id"]
