"""A built function run as Lambda runs it: a host process behind the Lambda Runtime Interface Emulator.

The emulator (the `aws-lambda-rie` binary the SAM CLI ships) serves the Lambda runtime API and the invoke API;
the function's process is Python 3.13 running `awslambdaric`, the runtime interface client the Lambda Python
images use, with nothing on its path but the built function, the built layer and the client itself (`-S`: no
site-packages). So an invocation goes through the real runtime protocol, event and response serialised as
Lambda serialises them, and the code imported is what `sam build` put in the artifact.

`emulated` returns a `Handler`, the same callable the in-process pipeline takes, so `local.pipeline.Pipeline`
drives the built artifact exactly as it drives the source tree.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from local.lambda_runtime import Handler
from local.stack import LAMBDA_VARIABLES

INVOCATIONS = "/2015-03-31/functions/function/invocations"


class InvocationFailed(Exception):
    """The function raised: the runtime reported an error instead of a response."""


@dataclass(frozen=True)
class Runtime:
    """Where the pieces are: the emulator binary, the interpreter and the runtime interface client."""

    emulator: Path
    python: str
    client: Path
    """A directory holding `awslambdaric` and what it needs, and nothing else."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until the emulator accepts connections; it starts in well under a second, the bound only guards a hang."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the emulator exited ({process.returncode}): {log.read_text()[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the emulator did not listen on {port}: {log.read_text()[-2000:]}")


@contextmanager
def emulated(
    runtime: Runtime, function: Path, layer: Path, log: Path, *, timeout_seconds: int = 300
) -> Iterator[Handler]:
    """Run `function` (a `sam build` function directory) behind the emulator while the block runs.

    Its environment is the Lambda variables of this process (the local stack's) and nothing else of it, as a
    container gets only what the template sets.
    """
    port, runtime_api_port = _free_port(), _free_port()
    environment = {name: value for name, value in os.environ.items() if name.startswith(LAMBDA_VARIABLES)}
    environment |= {
        "PYTHONPATH": os.pathsep.join(map(str, (function, layer, runtime.client))),
        "LAMBDA_TASK_ROOT": str(function),
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(timeout_seconds),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "NO_PROXY": "127.0.0.1,localhost",
        "LANG": "C.UTF-8",
        "PATH": "/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",  # as on Lambda, where the code is on a read-only file system
    }
    command = [
        str(runtime.emulator),
        "--runtime-interface-emulator-address",
        f"127.0.0.1:{port}",
        "--runtime-api-address",  # where the function's process asks for work: one per emulator
        f"127.0.0.1:{runtime_api_port}",
        runtime.python,
        "-S",
        "-m",
        "awslambdaric",
        "app.handler",
    ]
    with log.open("ab") as output:
        process = subprocess.Popen(command, cwd=function, env=environment, stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_for(port, process, log)
        yield _invoker(port, timeout_seconds, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _invoker(port: int, timeout_seconds: int, log: Path) -> Handler:
    def invoke(event: dict[str, Any], context: Any = None) -> Any:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{INVOCATIONS}", data=orjson.dumps(event))
        try:
            with urllib.request.urlopen(request, timeout=timeout_seconds + 60) as answer:
                response = orjson.loads(answer.read() or b"null")
        except urllib.error.HTTPError as error:  # the runtime died (at init, say): its log says why
            tail = log.read_text()[-3000:]
            raise InvocationFailed(f"the emulator answered {error.code}; the function's log: {tail}") from None
        if isinstance(response, dict) and "errorType" in response:
            raise InvocationFailed(f"{response['errorType']}: {response.get('errorMessage')}")
        return response

    return invoke
