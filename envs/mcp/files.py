"""Env files: YAML that declares environments, loaded by ``resrl ... --env-file FILE``.

```yaml
mcp:
  - id: mcp/tickets
    command: python server.py        # or url: http://127.0.0.1:8000/mcp
    tasks: tasks.py:generate_tasks   # paths are relative to this file's folder
    reward: rewards.py:score         # or {tool: grade}
    setup_tool: setup
    hidden_tools: [grade]
```

``mcp`` is a list of :class:`~resrl_envs.mcp.spec.MCPEnvSpec` fields, or a mapping from env id to those fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from resrl.core.registry import EnvSpec
from resrl_envs.mcp.env import register_spec
from resrl_envs.mcp.spec import MCPEnvSpec

SECTIONS = ("mcp",)


def load_env_file(path: str | Path) -> list[EnvSpec]:
    """Register every environment ``path`` declares; returns their specs. Bad files raise ``ValueError``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"env file {p} does not exist")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{p}: an env file is a mapping with a section of {', '.join(SECTIONS)}")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ValueError(f"{p}: unknown section(s) {unknown}; an env file has {', '.join(SECTIONS)}")
    entries = _entries(raw["mcp"], p)
    base = str(p.resolve().parent)
    registered = []
    for i, entry in enumerate(entries):
        try:
            spec = MCPEnvSpec.model_validate({"base_dir": base, **entry})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(entry)'}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"{p}: mcp entry {i} ({entry.get('id', '?')}): {problems}") from None
        registered.append(register_spec(spec))
    return registered


def _entries(section: Any, path: Path) -> list[dict[str, Any]]:
    if isinstance(section, dict):
        section = [{"id": key, **(value or {})} for key, value in section.items()]
    if not isinstance(section, list) or not all(isinstance(e, dict) for e in section):
        raise ValueError(f"{path}: 'mcp' must be a list of env entries or a mapping from env id to entry")
    return section
