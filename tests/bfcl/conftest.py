"""BFCL tests need the bfcl-eval data (and, for the differential test, BFCL's checker in its own venv).

``bash scripts/fetch_bfcl.sh`` provides both; without them the tests skip with the reason printed, and under
``CI=true`` (where .ci/run runs that script) a missing one fails.
"""

from __future__ import annotations

import pytest

from tests.bfcl.differential import oracle_python
from tests.conftest import _missing


@pytest.fixture(scope="session")
def require_bfcl_data() -> None:
    """Skip (or fail under CI) unless the BFCL v4 data can be read."""
    from resrl_envs.bfcl.data import data_problem

    problem = data_problem()
    if problem:
        _missing("BFCL data", problem)


@pytest.fixture(scope="session")
def bfcl_oracle(require_bfcl_data: None) -> str:
    """The Python of the virtualenv holding bfcl-eval (BFCL's own checker)."""
    python = oracle_python()
    if python is None:
        _missing("BFCL's checker", "no bfcl-eval virtualenv; run `bash scripts/fetch_bfcl.sh` or set RESRL_BFCL_VENV")
    return str(python)
