"""Fixtures that build the world: one local stack (moto + fake Encord) per session, emptied per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from local.stack import POWERTOOLS_ENVIRONMENT, LocalStack, local_stack

os.environ.update(POWERTOOLS_ENVIRONMENT)  # before any test module imports the handlers' code

from local.pipeline import Pipeline


@pytest.fixture(scope="session")
def session_stack() -> Iterator[LocalStack]:
    with local_stack() as stack:
        yield stack


@pytest.fixture
def stack(session_stack: LocalStack) -> LocalStack:
    session_stack.reset()
    session_stack.encord.reset()
    return session_stack


@pytest.fixture
def pipeline(stack: LocalStack) -> Pipeline:
    return Pipeline.on(stack)
