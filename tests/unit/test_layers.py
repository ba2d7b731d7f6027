"""The layers of the package, as its imports show them: each layer uses only those below it.

Read from the source with `ast`, so the rules hold for every module, imported by a test or not. A rule broken
here is a shortcut through the layers (a source that asks a check, a handler that talks to S3 itself), which
is how the package grew two of several things before.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "shared" / "label_importer"

ALLOWED = {
    "model": {"model"},
    "sources": {"model", "sources", "runtime"},
    "checks": {"model", "checks"},
    "encord_target": {"model", "checks", "encord_target", "runtime"},
    "store": {"model", "store", "runtime"},
    "runtime": {"model", "runtime", "store", "encord_target"},
    "services": {"model", "sources", "checks", "encord_target", "store", "runtime", "services"},
}
"""Which layers each layer may import. `runtime` is two things: its leaves (settings, observability, backoff,
retries) that every layer may use, and `world`, which builds the storage and Encord collaborators from them."""

RUNTIME_LEAVES = {"settings", "observability", "backoff", "retries"}
SOURCES_SEEN_FROM_OUTSIDE = {"formats", "label_source", "label_file", "bounded_reading"}
"""What the rest of the package may know of sources: which one reads a file, what a source is, and the bounded
reading every source reads through. A format's own modules are its business."""


def modules(*folders: Path) -> Iterator[Path]:
    for folder in folders:
        yield from sorted(path for path in folder.rglob("*.py") if ".aws-sam" not in path.parts)


def imported(path: Path) -> Iterator[tuple[str, list[str]]]:
    """(module, names imported from it) for every import in the file, absolute as the package writes them."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [alias.name for alias in node.names]


def layer_of(path: Path) -> tuple[str, str]:
    """(layer, module) of a file in the package: `store/jobs.py` -> ("store", "jobs")."""
    parts = path.relative_to(LAYER).with_suffix("").parts
    return (parts[0], parts[-1]) if len(parts) > 1 else ("", parts[0])


def package_imports(path: Path) -> Iterator[tuple[str, str, list[str]]]:
    """(layer, module path, names) of each import of the package's own modules."""
    for module, names in imported(path):
        parts = module.split(".")
        if parts[0] == "label_importer" and len(parts) > 1:
            yield parts[1], module, names


def test_only_the_storage_layer_talks_to_aws() -> None:
    """boto3 and botocore stay in store/: handlers, services, the CLI and Encord code reach AWS through it."""
    talking = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in modules(LAYER, ROOT / "functions", ROOT / "cli")
        for module, _ in imported(path)
        if module.split(".")[0] in ("boto3", "botocore") and LAYER / "store" not in path.parents
    ]
    assert talking == []


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    crossing = [
        f"{path.relative_to(LAYER)} imports {module}"
        for path in modules(LAYER / layer)
        for target, module, _ in package_imports(path)
        if target not in ALLOWED[layer]
    ]
    assert crossing == []


def test_the_runtime_leaves_import_no_layer_above_the_model() -> None:
    """Settings, observability, backoff and retries are used by every layer, so they can use none of them."""
    crossing = [
        f"{path.relative_to(LAYER)} imports {module}"
        for path in modules(LAYER / "runtime")
        if layer_of(path)[1] in RUNTIME_LEAVES
        for target, module, _ in package_imports(path)
        if target != "model" and not (target == "runtime" and module.split(".")[-1] in RUNTIME_LEAVES)
    ]
    assert crossing == []


def test_nothing_outside_sources_knows_a_format_s_modules() -> None:
    """Validation and chunking see a `LabelSource`; a new format is a module under sources/ and an entry in
    `formats.FORMATS`, and nothing else changes."""
    knowing = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in modules(LAYER, ROOT / "functions", ROOT / "cli")
        if LAYER / "sources" not in path.parents
        for target, module, _ in package_imports(path)
        if target == "sources" and module.split(".")[2] not in SOURCES_SEEN_FROM_OUTSIDE
    ]
    assert knowing == []


def test_no_module_imports_another_module_s_private_names() -> None:
    """A leading underscore means "this module's own": no service (or anything else) reaches into another."""
    reaching = [
        f"{path.relative_to(ROOT)}: {name} from {module}"
        for path in modules(LAYER, ROOT / "functions", ROOT / "cli")
        for module, names in imported(path)
        if module.split(".")[0] in ("label_importer", "label_importer_cli")
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert reaching == []


def test_every_format_module_under_sources_is_registered() -> None:
    """A source class written but not listed in FORMATS would never read a file."""
    from label_importer.sources.formats import FORMATS

    defined = {
        node.name
        for path in modules(LAYER / "sources")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
        and not any(isinstance(base, ast.Name) and base.id == "Protocol" for base in node.bases)
        and any(isinstance(item, ast.FunctionDef) and item.name == "claims" for item in node.body)
    }
    assert defined == {source.__name__ for source in FORMATS}  # type: ignore[attr-defined]
