"""The `-m` rule of tests/conftest.py: integration tests run only when asked for."""

from pathlib import Path

import pytest

from tests.conftest import asks_for_integration

pytest_plugins = ["pytester"]


@pytest.mark.parametrize(
    "markexpr",
    ["integration", "integration and not slow", "integration or slow", "(integration)"],
)
def test_an_expression_that_selects_integration_tests_opts_in(markexpr):
    assert asks_for_integration(markexpr)


@pytest.mark.parametrize(
    "markexpr",
    ["", "  ", "not slow", "slow", "not integration", "integration or not integration"],
)
def test_any_other_expression_leaves_them_skipped(markexpr):
    assert not asks_for_integration(markexpr)


TWO_TESTS = """
from pathlib import Path

import pytest

@pytest.mark.integration
def test_needs_docker():
    pass

def test_pure():
    pass
"""


def run_with(pytester, *args: str):
    pytester.makeconftest((Path(__file__).parents[1] / "conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers = integration: needs Docker\n")
    pytester.makepyfile(TWO_TESTS)
    return pytester.runpytest_inprocess(*args)


def test_without_m_the_integration_test_is_skipped(pytester):
    run_with(pytester).assert_outcomes(passed=1, skipped=1)


def test_an_unrelated_m_expression_keeps_it_skipped(pytester):
    run_with(pytester, "-m", "not slow").assert_outcomes(passed=1, skipped=1)


def test_m_integration_runs_it_alone(pytester):
    run_with(pytester, "-m", "integration").assert_outcomes(passed=1, deselected=1)
