"""The layer's requirements.txt (what `sam build` installs) must match pyproject.toml (what tests run on)."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_layer_requirements_match_the_project_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    layer = [
        line.strip()
        for line in (ROOT / "shared" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert layer == project


def test_each_documented_example_is_the_sample_file_the_tests_import() -> None:
    """docs/label-format.md shows every file of samples/kinds/ verbatim, and nothing else as a sample."""
    doc = (ROOT / "docs" / "label-format.md").read_text()
    shown = dict(re.findall(r"<!-- sample: (\S+) -->\n```json\n(.*?)```", doc, flags=re.DOTALL))
    samples = {path.name: path.read_text() for path in (ROOT / "samples" / "kinds").glob("*.jsonl")}
    assert shown == samples


def test_every_test_the_readme_names_exists() -> None:
    """The fault table points at tests by name; a renamed test must not leave it pointing at nothing."""
    named = re.findall(r"`(test_\w+\.py)::(test_\w+)`", (ROOT / "README.md").read_text())
    assert len(named) >= 14
    for module, test in named:
        source = (ROOT / "tests" / "integration" / module).read_text()
        assert f"def {test}(" in source, f"{module}::{test}"
