"""Shared test settings: integration tests are opt-in with `-m integration`.

They run only when the `-m` expression asks for integration tests: it selects a
test that carries only the `integration` marker and not a test without markers
(`-m integration`, `-m "integration and not slow"`). Any other expression, e.g.
`-m "not slow"`, leaves them skipped, as does no `-m` at all.
"""

import pytest
from _pytest.mark import MarkMatcher
from _pytest.mark.expression import Expression

INTEGRATION = "integration"


def asks_for_integration(markexpr: str) -> bool:
    """Whether a `-m` expression opts in to the integration tests (pytest's own matching)."""
    if not markexpr.strip():
        return False
    expression = Expression.compile(markexpr)
    only_integration = MarkMatcher.from_markers([pytest.mark.integration.mark])
    no_markers = MarkMatcher.from_markers([])
    return expression.evaluate(only_integration) and not expression.evaluate(no_markers)


def pytest_collection_modifyitems(config, items):
    if asks_for_integration(config.getoption("-m")):
        return
    skip = pytest.mark.skip(reason="integration test: run with -m integration")
    for item in items:
        if item.get_closest_marker(INTEGRATION):
            item.add_marker(skip)
