"""Package discovery for the folders the product card fixes (envs/, servers/, tasks/).

Those folder names are taken on PyPI, so they install as `resrl_envs`, `resrl_servers` and `resrl_tasks`;
pyproject.toml maps the names to the folders and this file lists their sub-packages.
"""

from setuptools import find_packages, setup


def _mapped(name: str, folder: str) -> list[str]:
    return [name] + [f"{name}.{sub}" for sub in find_packages(folder)]


setup(
    packages=find_packages(include=["resrl", "resrl.*"])
    + _mapped("resrl_envs", "envs")
    + _mapped("resrl_servers", "servers")
    + _mapped("resrl_tasks", "tasks")
)
