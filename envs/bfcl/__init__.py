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


def left_out_notes(pattern: str | None) -> list[str]:
    """``resrl envs list``'s notes on the BFCL v4 categories without an env, for a listing matching ``pattern``."""
    from fnmatch import fnmatch

    from resrl_envs.bfcl.data import LEFT_OUT

    return [
        f"bfcl/{name} is not served: {why}"
        for name, why in LEFT_OUT.items()
        if pattern is None or fnmatch(f"bfcl/{name}", pattern)
    ]
