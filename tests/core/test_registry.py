"""Registry: register/make, glob listing, and discovery of a separately installed package's entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import pytest

import resrl
from resrl.core.registry import ENTRY_POINT_GROUP

PLUGIN = """
import resrl
from resrl import ChatEnv, ParsedAction, Task, Transition


class Shout(ChatEnv):
    description = "Say the word in capitals."
    tags = ("plugin",)

    @classmethod
    def generate_tasks(cls, split, n, seed):
        return [Task(id=f"{split}-{seed}-{i}", env_id="shout", split=split, answer="HI",
                     messages=[{"role": "user", "content": "say hi loudly"}]) for i in range(n)]

    def _act(self, action):
        ok = isinstance(action, ParsedAction) and action.content == self.task.answer
        return Transition(reward=float(ok), terminated=True)

    @classmethod
    def gold_actions(cls, task):
        return [ParsedAction(content="HI")]


def register_more():
    resrl.register("plugin/shout-twice", Shout, description="Shout, registered by a function.", multi_turn=False)
"""


def test_register_make_and_kwargs() -> None:
    from resrl_docs_example import WordLengthEnv  # noqa: F401  (registered by tests/core/conftest.py)

    env = resrl.make("example/word-length", max_steps=3)
    assert isinstance(env, gym.Env) and env.max_steps == 3 and env.env_id == "example/word-length"
    obs, info = env.reset(seed=1)
    assert obs[0]["role"] == "user" and info["tools"][0]["function"]["name"] == "count_letters"
    assert info["task_id"].startswith("train-")
    for _ in range(3):
        _, _, terminated, truncated, _ = env.step("<tool_call>{broken</tool_call>")
    assert truncated and not terminated
    with pytest.raises(gym.error.ResetNeeded):
        env.step("hello")


def test_unknown_id_suggests_close_matches() -> None:
    with pytest.raises(KeyError, match="example/word-length"):
        resrl.make("example/word-lenght")


def test_entry_point_from_a_separate_package_is_discovered(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "shout_pkg").mkdir(parents=True)
    (src / "shout_pkg" / "__init__.py").write_text(PLUGIN)
    (src / "pyproject.toml").write_text(
        textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "shout-pkg"
        version = "0.1"
        [project.entry-points."{ENTRY_POINT_GROUP}"]
        "plugin/shout" = "shout_pkg:Shout"
        more = "shout_pkg:register_more"
    """)
    )
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(src),
        ],
        check=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-m", "resrl", "envs", "list", "--json", "plugin/*"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    listed = {e["id"]: e for e in json.loads(out.stdout)}
    assert listed["plugin/shout"] == {
        "id": "plugin/shout",
        "description": "Say the word in capitals.",
        "multi_turn": False,
        "tags": ["plugin"],
    }
    assert listed["plugin/shout-twice"]["description"] == "Shout, registered by a function."
    check = subprocess.run(
        [sys.executable, "-m", "resrl", "envs", "check", "plugin/shout"], capture_output=True, text=True, env=env
    )
    assert check.returncode == 0, check.stdout + check.stderr
