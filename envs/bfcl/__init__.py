"""BFCL v4 (``bfcl/<category>``): the Berkeley Function Calling Leaderboard's entries as evaluation-only envs.

The data is read at run time from the ``bfcl-eval`` package (see :mod:`resrl_envs.bfcl.data`); nothing of it is
copied into this repository. ``docs/bfcl.md`` describes the envs, the checker and its agreement with BFCL's.
"""


def register_envs() -> None:
    """Register one ``bfcl/<category>`` env per BFCL category we serve (the ``resrl.envs`` entry point)."""
    from resrl import register
    from resrl_envs.bfcl.env import BFCL_ENVS
    from resrl_envs.bfcl.multi_env import BFCL_MULTI_TURN_ENVS

    for cls in (*BFCL_ENVS, *BFCL_MULTI_TURN_ENVS):
        register(cls.env_id, cls)
