"""Multi-turn stateful function-calling domains (``fc/multi/<domain>`` and their ``miss_param``/``miss_func``)."""

from __future__ import annotations

from resrl.core.registry import register
from resrl_envs.fc.multi.engine import MultiTurnFCEnv, variants

VARIANT_NOTES = {
    "base": "",
    "miss_param": " One request omits a required value: the right move is to ask for it.",
    "miss_func": " A needed tool appears only in a later turn: until then, say it cannot be done.",
}


def domain_classes() -> list[type[MultiTurnFCEnv]]:
    """Every domain's base env class."""
    from resrl_envs.fc.multi.banking import BankingEnv
    from resrl_envs.fc.multi.calendar_app import CalendarEnv
    from resrl_envs.fc.multi.filesystem import FileSystemEnv
    from resrl_envs.fc.multi.messaging import MessagingEnv
    from resrl_envs.fc.multi.smarthome import SmartHomeEnv
    from resrl_envs.fc.multi.travel import TravelEnv

    return [BankingEnv, CalendarEnv, FileSystemEnv, MessagingEnv, SmartHomeEnv, TravelEnv]


def register_multi_turn() -> list[str]:
    """Register every domain and its two variants; returns the ids."""
    ids = []
    for domain_cls in domain_classes():
        for cls in variants(domain_cls):
            tags = [*domain_cls.tags] + ([cls.variant.replace("_", "-")] if cls.variant != "base" else [])
            register(
                cls.env_name(),
                cls,
                description=domain_cls.description + VARIANT_NOTES[cls.variant],
                multi_turn=True,
                tags=tags,
            )
            ids.append(cls.env_name())
    return ids
