"""Imported by ``resrl eval --import coin_plugin`` in a fresh process: registers the test coin envs."""

import coin_env

coin_env.register()
