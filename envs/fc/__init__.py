"""Function-calling environments (``fc/...``): single-turn BFCL-style categories and multi-turn domains."""


def register_envs() -> None:
    """Register every ``fc/`` environment (called through the ``resrl.envs`` entry point)."""
    from resrl_envs.fc.multi import register_multi_turn
    from resrl_envs.fc.single import register_single_turn

    register_single_turn()
    register_multi_turn()
