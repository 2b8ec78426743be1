"""Code environments (``code/...``): graded by running the model's code in the sandbox."""


def register_envs() -> None:
    """Register ``code/function``, ``code/stdio`` and ``code/interactive`` (the ``resrl.envs`` entry point)."""
    import resrl
    from resrl_envs.code.envs import FunctionEnv, InteractiveEnv, StdioEnv

    resrl.register("code/function", FunctionEnv)
    resrl.register("code/stdio", StdioEnv)
    resrl.register("code/interactive", InteractiveEnv)
