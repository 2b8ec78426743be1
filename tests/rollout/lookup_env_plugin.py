"""Imported by ``resrl rollout --import``: registers the test lookup env in a fresh process."""

import lookup_env

lookup_env.register()
