"""Fixtures that build the world: one local stack (moto + fake Encord) per session, emptied per test."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from hypothesis import settings as hypothesis_settings

from local.stack import POWERTOOLS_ENVIRONMENT, LocalStack, local_stack

os.environ.update(POWERTOOLS_ENVIRONMENT)  # before any test module imports the handlers' code

from local.lambda_runtime import environment_changed
from local.pipeline import Pipeline

# Hypothesis fails an example that takes longer than 200 ms by default: a measure of the machine's load, not of
# the code (validation speed is what bench/validator_memory measures). Ten seconds still catches an example
# that hangs or grows without bound; a test's own @settings(deadline=...) still wins.
hypothesis_settings.register_profile("any-machine", deadline=timedelta(seconds=10))
hypothesis_settings.load_profile("any-machine")


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


@pytest.fixture
def redeployed(stack: LocalStack) -> Iterator[Callable[..., Pipeline]]:
    """`redeployed(ENCORD_TIMEOUT_SECONDS="5")`: the pipeline with the functions' environment changed for this
    test only, on fresh containers; the environment and every warm cache are put back afterwards.

    For the few tests that need a setting the rest of the suite must not run with, such as a client timeout
    short enough for an injected slow answer to exceed it.
    """
    with contextlib.ExitStack() as changes:

        def pipeline_with(**variables: str) -> Pipeline:
            changes.enter_context(environment_changed(**variables))
            return Pipeline.on(stack)

        yield pipeline_with
