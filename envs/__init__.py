"""Environments shipped with resrl (installed as ``resrl_envs``)."""
