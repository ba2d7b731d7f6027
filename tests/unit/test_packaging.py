"""What is installed where, checked against what the code imports, and the docs against the repository.

The Lambda layer (shared/requirements.in, which `make lock` pins into the requirements.txt `sam build` installs)
holds what the functions import and nothing else; the command line is a package of its own outside it;
pyproject.toml gives the layer's dependencies plus the command line's, and the local stack's behind the `local`
extra.
"""

import ast
import re
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import label_importer_cli

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
FIRST_PARTY = frozenset(
    name for name in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"] if "." not in name
)
"""label_importer, label_importer_cli and local: installed from this repository, never a requirement."""
LAYER = ROOT / "shared" / "label_importer"
STORE = LAYER / "store"
CLI = ROOT / "cli" / "label_importer_cli"
NEVER_IN_THE_LAYER = frozenset({"label_importer_cli", "local", "tqdm", "moto"})
"""The command line and what only it and the local stack use: the functions must not load any of them."""


def layer_and_functions() -> list[Path]:
    return [*LAYER.rglob("*.py"), *(ROOT / "functions").glob("*/app.py")]


def imports(files: Iterable[Path]) -> dict[str, set[str]]:
    """Each top-level module the files import, absolutely, to the files that import it. An import inside a
    function counts as well: a lazy import runs too, only later.
    """
    found: dict[str, set[str]] = {}
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.partition(".")[0], set()).add(str(file.relative_to(ROOT)))
    return found


def third_party(found: dict[str, set[str]]) -> dict[str, set[str]]:
    return {name: files for name, files in found.items() if name not in sys.stdlib_module_names | FIRST_PARTY}


def requirements(lines: Iterable[str]) -> list[Requirement]:
    return [Requirement(line) for line in (line.strip() for line in lines) if line and not line.startswith("#")]


def layer_requirements() -> list[Requirement]:
    return requirements((ROOT / "shared" / "requirements.in").read_text().splitlines())


def distributions_of(module: str) -> set[str]:
    """The installed distributions that provide a top-level module, as importlib.metadata maps them."""
    return {canonicalize_name(name) for name in metadata.packages_distributions().get(module, [])}


def installed_by(requirement: Requirement) -> set[str]:
    """The distributions a requirement installs that its users may import: itself, and what it requires directly
    (with the extras it names, as boto3 brings botocore, pydantic pydantic-core, encord requests).

    One level only: deeper down, a new release of a dependency could drop a distribution without anything here
    changing, so code that imports it must list it.
    """
    names = {canonicalize_name(requirement.name)}
    for line in metadata.requires(requirement.name) or []:
        dependency = Requirement(line)
        extras = ("", *requirement.extras)
        if dependency.marker is None or any(dependency.marker.evaluate({"extra": extra}) for extra in extras):
            names.add(canonicalize_name(dependency.name))
    return names


def unprovided(found: dict[str, set[str]], listed: Iterable[Requirement]) -> dict[str, list[str]]:
    """Third-party modules the files import that no listed requirement installs, with the files importing them."""
    provided = set().union(*map(installed_by, listed))
    return {name: sorted(files) for name, files in third_party(found).items() if not distributions_of(name) & provided}


def unimported(listed: Iterable[Requirement], found: dict[str, set[str]]) -> list[str]:
    """Requirements that none of the files imports."""
    imported = set().union(*map(distributions_of, third_party(found)))
    return [str(requirement) for requirement in listed if canonicalize_name(requirement.name) not in imported]


def test_the_layer_requires_exactly_what_the_functions_import() -> None:
    """What `sam build` installs into the layer: every requirement is imported by the layer or a handler, and
    every third-party module they import comes with a requirement. A CLI-only package (tqdm) fails the first."""
    found = imports(layer_and_functions())

    assert unimported(layer_requirements(), found) == []
    assert unprovided(found, layer_requirements()) == {}


def test_the_project_depends_on_the_layer_and_on_what_the_command_line_adds() -> None:
    """`pip install .` gives the tests and the CLI the layer's own ranges, then a direct dependency for each module
    the CLI imports and the layer does not: so `label-importer status` works when installed that way, even where
    a dependency happens to bring the module along today (encord brings tqdm)."""
    project = requirements(PYPROJECT["project"]["dependencies"])
    layer = layer_requirements()
    beyond_the_layer = set(third_party(imports(CLI.rglob("*.py")))) - set(imports(layer_and_functions()))

    assert [str(requirement) for requirement in project[: len(layer)]] == [str(requirement) for requirement in layer]
    added = {canonicalize_name(requirement.name) for requirement in project[len(layer) :]}
    assert added == set().union(*map(distributions_of, beyond_the_layer))


def test_the_local_extra_is_what_the_local_stack_adds() -> None:
    """`pip install '.[local]'` is what `label-importer import`, the demo and the tests need beyond the base."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    local = requirements(extras["local"])
    found = imports((ROOT / "local").glob("*.py"))

    assert unimported(local, found) == []
    assert unprovided(found, [*requirements(PYPROJECT["project"]["dependencies"]), *local]) == {}
    assert "encord-label-importer[local]" in extras["dev"]


def test_the_command_line_is_a_package_outside_the_layer_that_the_layer_never_loads() -> None:
    assert Path(label_importer_cli.__file__).resolve().parent == CLI
    assert not (ROOT / "shared" / "label_importer_cli").exists()
    assert not (LAYER / "__main__.py").exists()  # `python -m label_importer` is gone: the command is label-importer
    found = imports(layer_and_functions())
    assert {name: sorted(found[name]) for name in NEVER_IN_THE_LAYER if name in found} == {}


def test_only_the_store_imports_boto3_or_botocore() -> None:
    """The layer, the handlers and the CLI reach AWS through shared/label_importer/store/ alone."""
    files = [*layer_and_functions(), *CLI.rglob("*.py")]
    outside = [file for file in files if STORE not in file.parents]
    found = imports(outside)

    assert {name: sorted(found[name]) for name in ("boto3", "botocore") if name in found} == {}


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


def test_the_wheel_holds_every_module_of_the_layer_the_cli_and_the_local_stack(tmp_path: Path) -> None:
    """`pip install .` (how docs/operations.md installs the CLI) installs what the repository has, subpackages
    included: an editable install would hide a package list that names only the top-level ones."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("*.whl")
    packaged = {name for name in zipfile.ZipFile(wheel).namelist() if name.endswith(".py")}
    expected = {
        f"{package}/{path.relative_to(folder).as_posix()}"
        for package, folder in (("label_importer", LAYER), ("label_importer_cli", CLI), ("local", ROOT / "local"))
        for path in folder.rglob("*.py")
    }
    assert expected - packaged == set()
