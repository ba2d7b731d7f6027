"""The parts of a COCO file the importer reads, as models: what is checked before anything is converted.

COCO files carry many fields this importer has no use for (`area`, `num_keypoints`, `license`, tool-specific
extras), so unknown fields are allowed; the fields it does read are checked strictly. The optional `encord`
section holds the importer's options, which are strict like the JSON Lines header they extend.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import orjson
import pydantic
from pydantic import BaseModel, ConfigDict, Field

from label_importer.model.problems import ErrorCode, Problem, problems_from_pydantic
from label_importer.sources.coco.document import OPTIONS_SECTION, CocoSections
from label_importer.sources.mapping_option import MappingOption

CocoId = int | str
"""COCO ids are integers; some tools write strings. They are only ever compared, never computed with."""

Pixels = Annotated[float, Field(allow_inf_nan=False)]


class _Read(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


_Model = TypeVar("_Model", bound=BaseModel)


class CocoImage(_Read):
    id: CocoId
    file_name: str = Field(min_length=1)
    width: Annotated[int, Field(gt=0)]
    height: Annotated[int, Field(gt=0)]


class CocoCategory(_Read):
    id: CocoId
    name: str = Field(min_length=1)
    keypoints: list[str] | None = None
    """Keypoint names in the order of every annotation's `keypoints` triples (person_keypoints files)."""


class CocoRle(_Read):
    size: Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=2, max_length=2)]
    """[height, width], as COCO writes it."""
    counts: list[int] | str
    """Uncompressed run lengths (crowd annotations) or COCO's compressed string."""


class CocoAnnotation(_Read):
    id: CocoId
    image_id: CocoId
    category_id: CocoId
    bbox: Annotated[list[Pixels], Field(min_length=4, max_length=4)] | None = None
    segmentation: list[list[Pixels]] | CocoRle | None = None
    keypoints: list[Pixels] | None = None
    score: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    """Detection results carry a score; it becomes the object's confidence."""
    iscrowd: Literal[0, 1] = 0


class CocoOptions(MappingOption):
    """The file's `encord` section: the mapping option (`objects` by category name, `data_units` by image
    `file_name`), and what to do with crowds."""

    iscrowd: Literal["import", "skip"] = "import"
    """Crowd annotations (`iscrowd: 1`, one region covering many instances) are imported as one object each,
    or left out and counted."""


@dataclass(frozen=True)
class CocoDocument:
    """Everything but the annotations, checked."""

    options: CocoOptions
    images: list[CocoImage]
    categories: list[CocoCategory]


def checked(sections: CocoSections) -> tuple[CocoDocument, list[Problem]]:
    """The sections as models, and every problem in them located by index (`images[3].width`)."""
    problems: list[Problem] = []

    def parse(model: type[_Model], value: Any, where: str, known: Iterable[str]) -> _Model | None:
        try:  # as JSON, which the strict header options need for their enums
            return model.model_validate_json(orjson.dumps(value))
        except pydantic.ValidationError as error:
            problems.extend(problems_from_pydantic(0, error.errors(), prefix=where, known=known))
            return None

    options = parse(CocoOptions, sections.options or {}, OPTIONS_SECTION, CocoOptions.model_fields)

    def each(model: type[_Model], section: str, values: Any) -> list[_Model]:
        if not isinstance(values, list):
            problems.append(Problem(0, section, ErrorCode.WRONG_TYPE, f"'{section}' must be a list"))
            return []
        parsed = [parse(model, value, f"{section}[{i}]", model.model_fields) for i, value in enumerate(values)]
        return [item for item in parsed if item is not None]

    images = each(CocoImage, "images", sections.images)
    categories = each(CocoCategory, "categories", sections.categories)
    return CocoDocument(options or CocoOptions(), images, categories), problems
