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
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = [name for page in pages for name in re.findall(r"`(test_\w+\.py)::(test_\w+)`", page.read_text())]
    assert len(named) >= 14
    for module, test in named:
        source = (ROOT / "tests" / "integration" / module).read_text()
        assert f"def {test}(" in source, f"{module}::{test}"


def test_the_readme_stays_short() -> None:
    """The README is the front page: what it is, the two commands, a tour and links; the rest lives in docs/."""
    assert (ROOT / "README.md").stat().st_size <= 15 * 1024


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a page's headings: lowercased, punctuation but '-' and '_' dropped, spaces to '-'."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for line in re.sub(r"^ *```.*?^ *```", "", markdown, flags=re.MULTILINE | re.DOTALL).splitlines():
        heading = re.match(r"#{1,6} (.+?)\s*#*\s*$", line)
        if heading:
            anchor = re.sub(r"[^\w\- ]", "", heading[1].lower()).replace(" ", "-")
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            anchors.add(anchor if count == 0 else f"{anchor}-{count}")
    return anchors


def test_every_relative_link_in_the_docs_points_at_something_that_exists() -> None:
    """README.md and docs/*.md link to each other and to repo files; a moved page or heading must not break one."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    checked, broken = 0, []
    for page in pages:
        text = re.sub(r"^ *```.*?^ *```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
        for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue  # https:, mailto:: not a file of the repo
            checked += 1
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked.read_text()):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert checked >= 20
    assert broken == []
