"""The `mapping` option every format shares: the header's options, and how the file's names map onto the project.

Formats other than JSON Lines name things their own way (a COCO category, a YOLO class, a VOC `<name>`, an
export's feature hashes from another ontology). By default the importer matches those names to the project
itself (ontology titles ignoring case, data unit titles with or without folders); this one JSON shape says
otherwise where that guess is wrong, whatever the format. It lives where the format has room for it: COCO's
`encord` section, an export's leading `{"encord": …}` element, a CSV's leading `# {…}` line, or `encord.json`
at the root of a zip.
"""

from __future__ import annotations

from typing import Literal

import pydantic
from pydantic import Field

from label_importer.model.label_format import Header
from label_importer.model.problems import problems_from_pydantic
from label_importer.sources.archive import Archive
from label_importer.sources.label_source import SourceRejected

MAPPING_FILE = "encord.json"
"""The mapping's name inside a zip archive (YOLO, Pascal VOC, PNG masks), at the archive's root."""

MaskKind = Literal["semantic", "instance"]


class MappingOption(Header):
    objects: dict[str, str | None] = Field(default_factory=dict)
    """Class, category or label name in the file -> ontology object title or feature hash; null leaves that
    class's labels out (counted as left out, not as errors)."""
    classifications: dict[str, str | None] = Field(default_factory=dict)
    """Classification (question, tag) title in the file -> ontology classification title or feature hash; null
    leaves it out."""
    data_units: dict[str, str] = Field(default_factory=dict)
    """Image or file name in the file -> data unit title or data hash."""
    attributes: dict[str, str] = Field(default_factory=dict)
    """Attribute name in the file -> ontology attribute title (for the object or classification it is on)."""
    options: dict[str, str] = Field(default_factory=dict)
    """Option (answer) title in the file -> ontology option title."""
    masks: MaskKind = "semantic"
    """How a PNG mask's pixel values are read (PNG masks only): `semantic`, each value a class and one object per
    class in an image; `instance`, each value one object."""


def parsed_mapping(data: bytes | str, *, line: int = 0, where: str = MAPPING_FILE) -> MappingOption:
    """The mapping option in `data` (JSON), or SourceRejected with each problem at `where` (on `line`)."""
    try:
        return MappingOption.model_validate_json(data)
    except pydantic.ValidationError as error:
        raise SourceRejected(
            problems_from_pydantic(line, error.errors(), prefix=where, known=MappingOption.model_fields)
        ) from None


def archive_mapping(archive: Archive, *, max_bytes: int) -> MappingOption:
    """The `encord.json` at the archive's root, or the defaults where there is none."""
    if MAPPING_FILE not in archive.names:
        return MappingOption()
    return parsed_mapping(archive.read(MAPPING_FILE, max_bytes=max_bytes))
