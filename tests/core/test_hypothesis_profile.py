"""The suite's hypothesis profile (tests/conftest.py): property tests do not depend on machine load."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from tests.conftest import IN_CI


def test_no_deadline_no_timed_health_check_and_repeatable_examples_in_ci() -> None:
    assert settings.default.deadline is None
    assert HealthCheck.too_slow in settings.default.suppress_health_check
    assert settings.default.derandomize is IN_CI
