"""The label file format (JSON Lines, version 1): one model per concept, shared by validator and importer.

These models are the single source of truth for the format: `docs/label-format.schema.json` is generated
from them (a test keeps the committed file in step), the validator parses every line with them, and the
import function re-parses the records it receives with the same models. They are strict on purpose:
unknown fields, wrong types, NaN and coordinates outside [0, 1] are rejected before anything reaches
Encord, because a label that lands in the wrong place is worse than one that does not land at all.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from label_importer.model.branches import MAIN_BRANCH, BranchName

FORMAT_VERSION: Final = "1"

Unit = Annotated[float, Field(ge=0.0, le=1.0)]
"""A coordinate normalised to the image size."""

FrameNumber = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class Mode(StrEnum):
    """What a job does to its data units' labels: the one kind of every job, stored with it.

    A file asks for `append` or `replace` (`FileMode`); `rollback` is the job that undoes an import."""

    APPEND = "append"
    REPLACE = "replace"
    ROLLBACK = "rollback"


_FILE_MODES = (Mode.APPEND, Mode.REPLACE)


def _file_mode(value: Any) -> Any:
    """Refuse what a file may not ask for with the list of what it may, before the enum lists all three."""
    if value not in _FILE_MODES:
        raise PydanticCustomError("enum", "Input should be 'append' or 'replace'")
    return value


FileMode = Annotated[
    Mode,
    BeforeValidator(_file_mode),
    WithJsonSchema({"enum": [str(mode) for mode in _FILE_MODES], "type": "string", "title": "Mode"}),
]
"""The modes a file (and so an import job and its chunks) can have."""


class ErrorPolicy(StrEnum):
    STRICT = "strict"
    SKIP_INVALID = "skip-invalid"


PROJECT_HASH_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
ProjectHash = Annotated[str, Field(pattern=PROJECT_HASH_PATTERN)]
"""Encord project hashes are UUIDs. Anything else is refused before it reaches the SDK, which puts the hash in
a URL path: `../ontologies/<hash>` would make it request another API."""


class AfterSave(_Strict):
    """What to do with a data unit's workflow task once its labels are saved: set its priority, and complete it
    (move it to the workflow's end) or reopen it (back to its first annotation stage).

    In a file's options it applies to every data unit; on a record it decides for that record's data unit, each
    action given (not null) taking the place of the file's."""

    priority: Unit | None = None
    complete: bool | None = None
    reopen: bool | None = None

    @model_validator(mode="after")
    def _one_move(self) -> AfterSave:
        if self.complete and self.reopen:
            raise ValueError("give at most one of 'complete' and 'reopen': a task cannot end both done and reopened")
        return self

    def over(self, default: AfterSave | None) -> AfterSave:
        """These actions in place of `default`'s: a priority for a priority, complete or reopen for either."""
        if default is None:
            return self
        moves = self.complete is not None or self.reopen is not None
        return AfterSave(
            priority=default.priority if self.priority is None else self.priority,
            complete=self.complete if moves else default.complete,
            reopen=self.reopen if moves else default.reopen,
        )

    @property
    def move(self) -> Literal["complete", "reopen"] | None:
        return "complete" if self.complete else "reopen" if self.reopen else None

    @property
    def kinds(self) -> tuple[str, ...]:
        """The actions to apply, by the names outcomes and counters use: priority, complete, reopen."""
        return ("priority",) * (self.priority is not None) + ((self.move,) if self.move else ())


class Header(_Strict):
    """Optional first line: options for the whole file."""

    format_version: Literal["1"] = FORMAT_VERSION
    project_hash: ProjectHash | None = None
    mode: FileMode = Mode.APPEND
    on_error: ErrorPolicy = ErrorPolicy.STRICT
    dry_run: bool = False
    branch: BranchName = MAIN_BRANCH
    """The label branch the labels go to (model/branches.py)."""
    after_save: AfterSave | None = None


class FrameRange(_Strict):
    """Inclusive range of frames, as Encord stores them."""

    start: FrameNumber
    end: FrameNumber

    @model_validator(mode="after")
    def _ordered(self) -> FrameRange:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) must not be before start ({self.start})")
        return self


def _json_kind(value: Any) -> str | None:
    """Pick a union member from the JSON type alone, so a bad value gets one error, not one per member."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return "<int>"
    if isinstance(value, str):
        return "<text>"
    if (isinstance(value, dict) and "relation_to" in value) or isinstance(value, RelationAnswer):
        return "<relation>"
    if isinstance(value, dict | BaseModel):
        return "<object>"
    if isinstance(value, list):
        return "<list of text>" if all(isinstance(item, str) for item in value) else "<list>"
    return None


UNION_TAGS = frozenset({"<int>", "<text>", "<object>", "<relation>", "<list>", "<list of text>"})
"""Tags pydantic puts in error locations inside these unions; error reports strip them."""


def _by_json_kind(expected: str) -> Discriminator:
    """For a union of members tagged with `Tag`: the member is chosen by JSON type (see `_json_kind`);
    `expected` is what the error message asks for."""
    return Discriminator(_json_kind, custom_error_type="wrong_type", custom_error_message=f"expected {expected}")


FrameItem = Annotated[
    Annotated[FrameNumber, Tag("<int>")] | Annotated[FrameRange, Tag("<object>")],
    _by_json_kind("a frame number or a {start, end} range"),
]
_FrameList = Annotated[list[FrameItem], Field(min_length=1)]
Frames = Annotated[
    Annotated[FrameNumber, Tag("<int>")]
    | Annotated[FrameRange, Tag("<object>")]
    | Annotated[_FrameList, Tag("<list>")]
    | Annotated[_FrameList, Tag("<list of text>")],
    _by_json_kind("a frame number, a {start, end} range, or a list of them"),
]
"""A single frame, an inclusive range, or a list of both. A single image is frame 0."""


def frame_ranges(frames: Frames) -> list[tuple[int, int]]:
    """Frames as inclusive (start, end) pairs, never expanded: a hostile {0, 10**9} range stays two ints."""
    items = frames if isinstance(frames, list) else [frames]
    return [(item.start, item.end) if isinstance(item, FrameRange) else (item, item) for item in items]


class BoundingBox(_Strict):
    """Axis-aligned box: top-left corner and size, normalised."""

    x: Unit
    y: Unit
    w: Unit
    h: Unit


class RotatableBoundingBox(BoundingBox):
    """Box rotated by `theta` degrees clockwise around its centre."""

    theta: Annotated[float, Field(ge=0.0, lt=360.0)]


Point = Annotated[list[Unit], Field(min_length=2, max_length=2)]
"""`[x, y]`, normalised."""

Ring = Annotated[list[Point], Field(min_length=3)]
"""A closed outline: at least three points; the last joins the first."""


class PolygonWithHoles(_Strict):
    outer: Ring
    holes: list[Ring] = Field(default_factory=list)


class Polygons(_Strict):
    """Several polygons (and holes) forming one object instance, e.g. a fruit split by a branch."""

    polygons: Annotated[list[PolygonWithHoles], Field(min_length=1)]


PolygonGeometry = Annotated[
    Annotated[Ring, Tag("<list>")] | Annotated[Polygons, Tag("<object>")],
    _by_json_kind("a list of [x, y] points or {polygons: [{outer, holes}]}"),
]


class Visibility(StrEnum):
    """Encord's visibility of a skeleton point."""

    VISIBLE = "visible"
    OCCLUDED = "occluded"
    SELF_OCCLUDED = "self_occluded"
    INVISIBLE = "invisible"


class SkeletonPoint(_Strict):
    """A skeleton point with its visibility; a bare `[x, y]` is a point without one."""

    x: Unit
    y: Unit
    visibility: Visibility


SkeletonPointGeometry = Annotated[
    Annotated[Point, Tag("<list>")] | Annotated[SkeletonPoint, Tag("<object>")],
    _by_json_kind("[x, y] or {x, y, visibility}"),
]


class Bitmask(_Strict):
    """A mask in Encord's run-length encoding; width and height must equal the data unit's."""

    rle: str = Field(min_length=1)
    width: Annotated[int, Field(gt=0)]
    height: Annotated[int, Field(gt=0)]


GEOMETRY_FIELDS = (
    "bounding_box",
    "rotatable_bounding_box",
    "polygon",
    "polyline",
    "point",
    "bitmask",
    "skeleton",
)
"""Geometry fields of an object entry, each named after the Encord ontology shape it requires."""


class RelationAnswer(_Strict):
    """The answer of a relation attribute (title ending in `#relation`): another object of the same data
    unit, named by its `id`. Encord stores the related object's hash as the text answer."""

    relation_to: str = Field(min_length=1, max_length=128)


class NestedAnswer(_Strict):
    """A radio answer whose option carries nested attributes (e.g. Colour = Blue, then Any Other Colours?)."""

    option: str = Field(min_length=1)
    attributes: dict[str, AttributeAnswer] = Field(default_factory=dict)


_StaticAnswerMembers = (
    Annotated[str, Tag("<text>")]
    | Annotated[list[str], Tag("<list of text>")]
    | Annotated[NestedAnswer, Tag("<object>")]
    | Annotated[RelationAnswer, Tag("<relation>")]
)
StaticAnswer = Annotated[
    _StaticAnswerMembers,
    _by_json_kind("a text, an option title, a list of option titles, {option, attributes} or {relation_to}"),
]
"""Text attribute -> the text (or RelationAnswer for `#relation` attributes); radio -> the option title (or
NestedAnswer); checklist -> option titles."""


class DynamicAnswer(_Strict):
    """The answer of a dynamic attribute on some frames of a video (e.g. Position = Walking on 1-3)."""

    answer: StaticAnswer
    frames: Frames


AttributeAnswer = Annotated[
    _StaticAnswerMembers | Annotated[list[DynamicAnswer], Field(min_length=1), Tag("<list>")],
    _by_json_kind(
        "a text, an option title, a list of option titles, {option, attributes}, {relation_to} "
        "or a list of {answer, frames}"
    ),
]
"""A static answer, or for a dynamic attribute a list of per-frame answers."""

NestedAnswer.model_rebuild()


class ObjectLabel(_Strict):
    """One placement of an object instance: a geometry on some frames.

    Entries in the same data unit sharing an `id` are the same instance (tracked across frames, and the
    target of relation attributes). Without an `id`, every entry is an instance of its own.
    """

    name: str | None = Field(default=None, min_length=1, description="Ontology object title")
    feature_hash: str | None = Field(default=None, min_length=1, description="Ontology featureNodeHash")
    id: str | None = Field(default=None, min_length=1, max_length=128)
    frames: Frames = 0
    confidence: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    manual_annotation: bool | None = None
    attributes: dict[str, AttributeAnswer] = Field(default_factory=dict)

    bounding_box: BoundingBox | None = None
    rotatable_bounding_box: RotatableBoundingBox | None = None
    polygon: PolygonGeometry | None = None
    polyline: Annotated[list[Point], Field(min_length=2)] | None = None
    point: Point | None = None
    bitmask: Bitmask | None = None
    skeleton: Annotated[dict[str, SkeletonPointGeometry], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _one_feature_and_geometry(self) -> ObjectLabel:
        if (self.name is None) == (self.feature_hash is None):
            raise ValueError("give exactly one of 'name' or 'feature_hash'")
        given = [field for field in GEOMETRY_FIELDS if getattr(self, field) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one geometry ({', '.join(GEOMETRY_FIELDS)}); got {', '.join(given) or 'none'}"
            )
        return self

    @property
    def geometry_field(self) -> str:
        return next(field for field in GEOMETRY_FIELDS if getattr(self, field) is not None)


class ClassificationLabel(_Strict):
    """A frame-level classification: the answer to one ontology classification question."""

    name: str | None = Field(default=None, min_length=1, description="Classification (question) title")
    feature_hash: str | None = Field(default=None, min_length=1)
    answer: StaticAnswer
    frames: Frames = 0
    confidence: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    manual_annotation: bool | None = None

    @model_validator(mode="after")
    def _one_feature(self) -> ClassificationLabel:
        if (self.name is None) == (self.feature_hash is None):
            raise ValueError("give exactly one of 'name' or 'feature_hash'")
        return self


class LabelRecord(_Strict):
    """One line of the file: labels for one data unit. Several lines may target the same data unit."""

    data_hash: str | None = Field(default=None, min_length=1)
    data_title: str | None = Field(default=None, min_length=1)
    objects: list[ObjectLabel] = Field(default_factory=list)
    classifications: list[ClassificationLabel] = Field(default_factory=list)
    after_save: AfterSave | None = None

    @model_validator(mode="after")
    def _one_data_unit(self) -> LabelRecord:
        if (self.data_hash is None) == (self.data_title is None):
            raise ValueError("give exactly one of 'data_hash' or 'data_title'")
        return self


FIELD_NAMES = frozenset(
    name
    for model in (
        Header,
        AfterSave,
        LabelRecord,
        ObjectLabel,
        ClassificationLabel,
        RotatableBoundingBox,
        Bitmask,
        FrameRange,
        NestedAnswer,
        DynamicAnswer,
        RelationAnswer,
        Polygons,
        PolygonWithHoles,
        SkeletonPoint,
    )
    for name in model.model_fields
)
"""Every field name the format knows: what a misspelt field is compared with."""


def is_header(line: dict[str, Any]) -> bool:
    """A header is a first line that addresses no data unit; anything else is a label record."""
    return "data_hash" not in line and "data_title" not in line


def json_schema() -> dict[str, Any]:
    """JSON Schema of one line of a label file (header or record), for editors and other tools."""
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Encord label import file, one JSON Lines line (format version 1)",
        "description": "The first line may be a Header (no data_hash / data_title); every other line is a "
        "LabelRecord. Coordinates are normalised to [0, 1]; frame ranges are inclusive.",
        "oneOf": [{"$ref": "#/$defs/Header"}, {"$ref": "#/$defs/LabelRecord"}],
        "$defs": {},
    }
    for model in (Header, LabelRecord):
        model_schema = model.model_json_schema(ref_template="#/$defs/{model}")
        schema["$defs"].update(model_schema.pop("$defs", {}))
        schema["$defs"][model.__name__] = model_schema
    return schema
