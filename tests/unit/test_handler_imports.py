"""What importing each handler loads: a cold start pays for every module, so none may come that it does not use.

Each handler is imported in a fresh interpreter laid out as Lambda lays it out (its folder and the layer's
source on the path), and the test reads `sys.modules` afterwards. `bench.cold_start` measures the same imports
on the built artifact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = sorted(path.parent.name for path in (ROOT / "functions").glob("*/app.py"))
WATCHED = ("encord", "numpy")
REPORT = """
import json, sys
import app
print(json.dumps({"loaded": [name for name in %r if name in sys.modules]}))
"""


def imported(handler: str, **environment: str) -> dict[str, object]:
    folder = ROOT / "functions" / handler
    variables = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT / "shared")]),
        "AWS_DEFAULT_REGION": "eu-west-1",
        "POWERTOOLS_SERVICE_NAME": "encord-label-importer",
        **environment,
    }
    done = subprocess.run(
        [sys.executable, "-c", REPORT % (WATCHED,)], cwd=folder, env=variables, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return found


def test_every_function_is_checked() -> None:
    assert HANDLERS == ["import_labels", "rollback", "validate_and_chunk", "validation_failures"]


def test_the_validation_failures_function_imports_neither_the_encord_sdk_nor_numpy() -> None:
    """It ends abandoned jobs FAILED with their reports: DynamoDB and S3, never Encord."""
    assert imported("validation_failures")["loaded"] == []
    assert imported("import_labels")["loaded"] == list(WATCHED)  # what the check would see, were one to come back
