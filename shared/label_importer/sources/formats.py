"""Which source reads a file: the first format that claims it, by suffix and, where formats share one, content.

Adding an input format is a module under sources/ with a class like `JsonLinesSource`, and one entry here.
"""

from __future__ import annotations

from label_importer.model.limits import Limits
from label_importer.sources.coco.source import CocoSource
from label_importer.sources.csv_classifications import CsvClassificationsSource
from label_importer.sources.cvat.source import CvatSource
from label_importer.sources.encord_export.source import ExportSource
from label_importer.sources.json_lines import JsonLinesSource
from label_importer.sources.label_file import LabelFile
from label_importer.sources.label_source import LabelSource, SourceFormat
from label_importer.sources.labelbox.source import LabelboxSource
from label_importer.sources.pascal_voc.source import VocSource
from label_importer.sources.png_masks.source import PngMasksSource
from label_importer.sources.yolo.source import YoloSource

FORMATS: tuple[SourceFormat, ...] = (
    ExportSource,
    CocoSource,
    CvatSource,  # before VOC, which claims every .xml and every zip with .xml entries
    VocSource,
    PngMasksSource,  # before YOLO, which claims every zip without .xml entries
    YoloSource,
    CsvClassificationsSource,
    LabelboxSource,
    JsonLinesSource,
)
"""In the order they are asked; JSON Lines, the importer's own format, claims whatever is left."""


def source_for(file: LabelFile, limits: Limits) -> LabelSource:
    """Raises FileRefused when telling the format needs a look the file does not allow (an unsafe archive)."""
    return next(source for source in FORMATS if source.claims(file))(file, limits)
