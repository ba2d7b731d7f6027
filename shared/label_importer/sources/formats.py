"""Which source reads a file, by its key: the first format that claims it.

Adding an input format is a module under sources/ with a class like `JsonLinesSource`, and one entry here.
"""

from __future__ import annotations

from label_importer.model.limits import Limits
from label_importer.sources.coco.source import CocoSource
from label_importer.sources.json_lines import JsonLinesSource
from label_importer.sources.label_source import FileOpener, LabelSource, SourceFormat

FORMATS: tuple[SourceFormat, ...] = (CocoSource, JsonLinesSource)
"""In the order they are asked; JSON Lines, the importer's own format, claims whatever is left."""


def source_for(key: str, open_file: FileOpener, limits: Limits) -> LabelSource:
    return next(source for source in FORMATS if source.claims(key))(open_file, limits)
