"""The built artifact behind the Lambda runtime emulator: one emulated function per template function.

`make artifact-check` builds the x86_64 artifact and says where it and the runtime pieces are through
`ARTIFACT_*` variables; run outside it, these tests fail with the command that prepares them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.lambda_runtime import Handler
from local.pipeline import Pipeline
from local.runtime_emulator import Runtime, emulated
from local.stack import LocalStack

FUNCTIONS = {
    "validate": "ValidateAndChunkFunction",
    "import_labels": "ImportLabelsFunction",
    "rollback": "RollbackFunction",
    "validation_failures": "ValidationFailuresFunction",
}


def _variable(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: these tests run from `make artifact-check`, which builds what they run")
    return value


@pytest.fixture(scope="session")
def built_functions(
    session_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Handler]]:
    """Each built function as a host process behind its own emulator, started once the local stack is up (they
    read its environment, as a container reads the template's) and stopped at the end of the session."""
    build = Path(_variable("ARTIFACT_BUILD_DIR"))
    runtime = Runtime(
        emulator=Path(_variable("ARTIFACT_EMULATOR")),
        python=_variable("ARTIFACT_PYTHON"),
        client=Path(_variable("ARTIFACT_RUNTIME_CLIENT")),
    )
    logs = tmp_path_factory.mktemp("emulator-logs")
    with contextlib.ExitStack() as running:
        yield {
            field: running.enter_context(
                emulated(runtime, build / function, build / "ImporterLayer" / "python", logs / f"{function}.log")
            )
            for field, function in FUNCTIONS.items()
        }


@pytest.fixture
def pipeline(stack: LocalStack, built_functions: dict[str, Handler]) -> Pipeline:
    """The pipeline with every function the built artifact, run through the Lambda runtime interface."""
    return Pipeline(stack, **built_functions)
