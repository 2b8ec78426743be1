"""Fixtures: a real env server on loopback, shared by the module's tests."""

from __future__ import annotations

import pytest

from tests.server.helpers import running_server


@pytest.fixture(scope="module")
def server_url():
    with running_server() as url:
        yield url
