"""Every file in `events/` is a real event its handler accepts: fed in-process against moto and the fake Encord.

They are what users pass to `sam local invoke -e`, so each must work once its `REPLACE-with-...` placeholders
are filled in (docs/deploying.md says with what). Each file has a test below; a new file without one fails.
`events/env.json` is checked against the template: `sam local invoke --env-vars` only overrides variables
the template declares for that function.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from event_feeds import EVENT_FILES, FEEDS, PLACEHOLDER
from sam_template import ROLES, VALIDATOR, load_template, sam_transform

from label_importer.runtime.settings import settings_from
from local.lambda_runtime import EVENTS_DIR
from local.pipeline import Pipeline

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", EVENT_FILES)
def test_each_event_file_is_accepted_by_its_handler(pipeline: Pipeline, name: str) -> None:
    assert name in FEEDS, f"no test feeds events/{name} to its handler; add one to FEEDS"
    FEEDS[name](pipeline)


def test_every_event_the_tests_feed_is_a_file() -> None:
    assert set(FEEDS) == set(EVENT_FILES)


def sam_local_environment(template: dict[str, Any], function: str, overrides: dict[str, str]) -> dict[str, str]:
    """The variables `sam local invoke --env-vars` gives a function: what the template declares, with a Ref to a
    resource (or to a parameter without a default) left empty, as SAM CLI cannot resolve it without
    deploying; then the file's values, but only for declared variables."""
    declared = sam_transform(template)["Resources"][function]["Properties"]["Environment"]["Variables"]
    environment = {}
    for name, value in declared.items():
        if isinstance(value, dict):
            parameter = template["Parameters"].get(value.get("Ref", ""), {})
            value = parameter.get("Default", "")
        environment[name] = str(value)
    environment.update({name: value for name, value in overrides.items() if name in declared})
    return environment


@pytest.mark.parametrize("function", list(ROLES))
def test_the_env_file_gives_sam_local_a_complete_configuration(function: str) -> None:
    """With its placeholders filled in, env.json supplies everything SAM CLI cannot resolve locally."""
    template = load_template()
    overrides = json.loads((EVENTS_DIR / "env.json").read_text())
    assert set(overrides) == set(ROLES)
    declared = sam_transform(template)["Resources"][function]["Properties"]["Environment"]["Variables"]
    assert set(overrides[function]) <= set(declared), "sam local ignores variables the template does not declare"
    values = {name: value.replace(PLACEHOLDER, "my-") for name, value in overrides[function].items()}

    config = settings_from(sam_local_environment(template, function, values))

    assert config.jobs_table_name == "my-your-JobsTableName"
    assert config.encord_secret_id == "my-your-EncordSshKeySecretArn"
    if function == VALIDATOR:
        assert config.import_queue_url == "my-your-ImportQueueUrl"


def test_event_files_are_where_the_readme_says() -> None:
    readme = (Path(__file__).resolve().parents[2] / "docs" / "deploying.md").read_text()
    for name in [*EVENT_FILES, "env.json"]:
        assert f"events/{name}" in readme, name
