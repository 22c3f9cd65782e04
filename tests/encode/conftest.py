"""Fixtures for the review-state store tests: the tiny prepared dataset of the sweep tests."""

from tests.tune.conftest import tiny_data  # noqa: F401 (a fixture)
