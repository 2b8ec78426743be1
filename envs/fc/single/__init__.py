"""Single-turn function-calling environments in the style of BFCL's categories.

``fc/simple``, ``fc/multiple``, ``fc/parallel``, ``fc/parallel_multiple`` and ``fc/irrelevance``: one user
request, one assistant turn, scored against a possible answer by :mod:`resrl_envs.fc.single.checker`.
"""

from __future__ import annotations


def register_single_turn() -> None:
    """Register the five single-turn ``fc/`` environments."""
    from resrl import register
    from resrl_envs.fc.single.env import SINGLE_TURN_ENVS

    for cls in SINGLE_TURN_ENVS:
        register(cls.env_id, cls)
