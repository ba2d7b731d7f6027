"""The check against the real Encord API (`python -m local.live_check`, docs/operations.md "Checking against the
real Encord API"): run as a user runs it, in a fresh process.

`test_the_live_check_passes_against_the_fake` proves the check itself on every run; the `live` test runs
it against the project in ENCORD_PROJECT_HASH with the key in ENCORD_SSH_KEY_FILE, and is skipped without
them (CI never sets them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from local.keys import generate_ssh_private_key
from local.pipeline import Pipeline
from local.stack import user_environment

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def live_check(**environment: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "local.live_check"],
        cwd=ROOT,
        env={**user_environment(), **environment},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode in (0, 1), done.stderr
    result = orjson.loads(done.stdout[done.stdout.index("{\n") :])
    assert result["ok"] == (done.returncode == 0)
    return result


def test_the_live_check_passes_against_the_fake(pipeline: Pipeline, tmp_path: Path) -> None:
    encord = pipeline.stack.encord
    assert encord is not None
    data_hash = encord.add_image("live.jpg", width=64, height=48)
    key_file = tmp_path / "key"
    key_file.write_text(generate_ssh_private_key())

    result = live_check(
        ENCORD_SSH_KEY_FILE=str(key_file),
        ENCORD_PROJECT_HASH=encord.project_hash,
        ENCORD_DOMAIN=encord.url,
        ENCORD_DATA_HASH=data_hash,
    )

    # The fake's ontology has every shape and kind of classification: 11 objects and 3 classifications.
    assert result["ok"] and result["labels_in_file"] == 14
    assert encord.label_row(data_hash)["data_units"][data_hash]["labels"]["objects"] == []  # type: ignore[index]


@pytest.mark.live
@pytest.mark.skipif(
    not (os.environ.get("ENCORD_SSH_KEY_FILE") and os.environ.get("ENCORD_PROJECT_HASH")),
    reason="the live check needs ENCORD_SSH_KEY_FILE and ENCORD_PROJECT_HASH (a project it may label and roll back)",
)
def test_every_label_kind_lands_in_the_real_encord_and_rolls_back() -> None:
    names = ("ENCORD_SSH_KEY_FILE", "ENCORD_PROJECT_HASH", "ENCORD_DOMAIN", "ENCORD_DATA_HASH")
    result = live_check(**{name: os.environ[name] for name in names if name in os.environ})

    assert result["ok"], result
