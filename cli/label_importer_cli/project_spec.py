"""An Encord project described by two files, so that a label file can be checked without Encord.

`ontology.json` is the ontology exactly as the encord SDK serialises it (`OntologyStructure.to_dict()`);
`data-units.json` lists the data units with what the checks need of each: hash, title, kind, frames and sizes
(an image group's per image). `label-importer export-spec` writes both from a real project, through the same
listing the validator makes; `validate` and `try-encord` read them. The data units may also be a CSV file
(`CSV_COLUMNS`), for projects described by hand.

Reading is strict, and a file that is not as described stops the command with one line naming the file, where
in it (JSON path or line) and what was expected. The models here are the schemas `make schema` publishes
(docs/ontology.schema.json, docs/data-units.schema.json): what is checked is what is documented.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import orjson
from encord import Project
from encord.constants.enums import DataType
from encord.objects import OntologyStructure, Shape
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from label_importer.model.data_units import DataUnit, list_data_units
from label_importer.model.label_format import PROJECT_HASH_PATTERN
from label_importer_cli.exit_codes import UsageError

ONTOLOGY_FILE = "ontology.json"
DATA_UNITS_FILE = "data-units.json"
CSV_COLUMNS = ("data_hash", "title", "data_type", "frames", "width", "height", "image_sizes")
"""The header row of a CSV data units file; `image_sizes` is `640x480;800x600` for an image group, else empty."""

SpecDataType = Literal["image", "video", "img_group", "dicom"]
"""The kinds of data unit a spec describes: the SDK's DataType values for the data labels are imported onto (an
image sequence is a video to the SDK)."""

_Size = tuple[int, int]
_Pixels = Annotated[int, Field(ge=1)]
_Model = TypeVar("_Model", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SpecDataUnit(_Strict):
    """One data unit, as `DataUnit` holds it. An img_group has `image_sizes`, one per frame; no other kind has."""

    data_hash: str = Field(min_length=1)
    title: str = Field(min_length=1)
    data_type: SpecDataType
    frames: int = Field(
        ge=1, description="Frames of a video, images of a group, slices of a DICOM series; 1 for an image."
    )
    width: int | None = Field(
        default=None, ge=1, description="Pixels; null for an image group, whose images have their own."
    )
    height: int | None = Field(default=None, ge=1)
    image_sizes: list[tuple[_Pixels, _Pixels]] | None = Field(
        default=None, description="An image group's [width, height] of each image, by frame; only for img_group."
    )

    @model_validator(mode="after")
    def _sizes_fit_the_kind(self) -> SpecDataUnit:
        if self.data_type != "img_group":
            if self.image_sizes is not None:
                raise ValueError(f"image_sizes is for an img_group only, not a {self.data_type}")
            return self
        if self.image_sizes is None:
            raise ValueError("an img_group needs image_sizes: [width, height] of each of its images")
        if len(self.image_sizes) != self.frames:
            raise ValueError(
                f"an img_group of {self.frames} frames needs {self.frames} image_sizes, one per image, not "
                f"{len(self.image_sizes)}"
            )
        return self

    @classmethod
    def of(cls, unit: DataUnit) -> SpecDataUnit:
        kind = unit.data_type.value if unit.data_type is not None else None
        if kind not in ("image", "video", "img_group", "dicom"):
            raise UsageError(
                f"data unit {unit.data_hash} ({unit.title!r}) is of type {kind}: the spec files describe image, "
                "video, img_group and dicom data units only"
            )
        return cls.model_validate(
            {
                "data_hash": unit.data_hash,
                "title": unit.title,
                "data_type": kind,
                "frames": unit.number_of_frames,
                "width": unit.width,
                "height": unit.height,
                "image_sizes": list(unit.image_sizes) if kind == "img_group" else None,
            }
        )

    def data_unit(self) -> DataUnit:
        return DataUnit(
            data_hash=self.data_hash,
            title=self.title,
            number_of_frames=self.frames,
            width=self.width,
            height=self.height,
            image_sizes=tuple(self.image_sizes or ()),
            data_type=DataType(self.data_type),
        )


class DataUnitsFile(_Strict):
    """`data-units.json`: a project's data units, and the project they belong to."""

    project_hash: str | None = Field(default=None, pattern=PROJECT_HASH_PATTERN)
    data_units: list[SpecDataUnit]


class _Loose(BaseModel):
    """The SDK's ontology documents carry more than the checks here look at; what they look at must be right."""

    model_config = ConfigDict(extra="allow", strict=True)


class _OntologyObject(_Loose):
    id: str
    name: str
    color: str
    shape: Shape
    featureNodeHash: str
    attributes: list[dict[str, Any]] = []


class _OntologyClassification(_Loose):
    id: str
    featureNodeHash: str
    attributes: list[dict[str, Any]] = Field(min_length=1)


class OntologyFile(_Loose):
    """`ontology.json`: an ontology as `OntologyStructure.to_dict()` writes it and `from_dict` reads it."""

    objects: list[_OntologyObject]
    classifications: list[_OntologyClassification]
    skeleton_templates: list[dict[str, Any]] = []


@dataclass(frozen=True)
class ProjectSpec:
    ontology: OntologyStructure
    units: list[DataUnit]
    project_hash: str | None
    """The project the files were exported from; None when the data units file does not say (a CSV)."""


def exported(project: Project) -> ProjectSpec:
    """The project's ontology and data units, listed as the validator lists them."""
    return ProjectSpec(project.ontology_structure, list_data_units(project), project.project_hash)


def write_spec(spec: ProjectSpec, out: Path) -> tuple[Path, Path]:
    """`ontology.json` and `data-units.json` in `out`; returns their paths."""
    units = [SpecDataUnit.of(unit) for unit in spec.units]
    document = DataUnitsFile(project_hash=spec.project_hash, data_units=units).model_dump(mode="json")
    for unit in document["data_units"]:
        if unit["image_sizes"] is None:
            del unit["image_sizes"]
    out.mkdir(parents=True, exist_ok=True)
    ontology, data_units = out / ONTOLOGY_FILE, out / DATA_UNITS_FILE
    ontology.write_bytes(orjson.dumps(spec.ontology.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    data_units.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    return ontology, data_units


def read_spec(ontology: Path, data_units: Path) -> ProjectSpec:
    """Both files, checked; raises UsageError naming the file and the first thing wrong in it."""
    units, project_hash = read_data_units(data_units)
    return ProjectSpec(read_ontology(ontology), units, project_hash)


def read_data_units(path: Path) -> tuple[list[DataUnit], str | None]:
    """The data units of a JSON or (by its suffix) CSV file, and the project hash the JSON file may give."""
    if path.suffix.lower() == ".csv":
        units, project_hash = _units_from_csv(path), None
    else:
        document = _model(path, DataUnitsFile)
        units, project_hash = document.data_units, document.project_hash
        _unique(path, units, lambda index: f"data_units[{index}]")
    return [unit.data_unit() for unit in units], project_hash


def json_schemas() -> dict[str, dict[str, Any]]:
    """The published JSON Schemas of the two files, by file name under docs/."""
    return {
        "ontology.schema.json": _titled(
            OntologyFile.model_json_schema(), "Encord ontology (OntologyStructure.to_dict)"
        ),
        "data-units.schema.json": _titled(DataUnitsFile.model_json_schema(), "Encord project data units"),
    }


def _titled(schema: dict[str, Any], title: str) -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": title}


def read_ontology(path: Path) -> OntologyStructure:
    _model(path, OntologyFile)
    try:
        return OntologyStructure.from_dict(orjson.loads(_read(path)))
    except Exception as error:  # the SDK's parser raises whatever its dict lookups and enums raise
        raise UsageError(
            f"{path}: not an ontology the encord SDK reads ({type(error).__name__}: {error}); export it with "
            "`label-importer export-spec` or OntologyStructure.to_dict()"
        ) from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise UsageError(f"{path}: cannot read it ({error.strerror})") from None


def _model(path: Path, model: type[_Model]) -> _Model:
    data = _read(path)
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise UsageError(f"{path}: line {error.lineno}, column {error.colno}: not JSON ({error.msg})") from None
    try:
        return model.model_validate_json(data)
    except ValidationError as error:
        raise UsageError(f"{path}: {_first_problem(error, _json_path)}") from None


def _json_path(location: Sequence[int | str]) -> str:
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")
    return path or "(the document)"


def _first_problem(error: ValidationError, where: Callable[[Sequence[int | str]], str]) -> str:
    problems = error.errors(include_url=False)
    first = problems[0]
    location = [part for part in first["loc"] if not (isinstance(part, str) and part.startswith("function-"))]
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    got = "" if first["type"] == "missing" else f", got {_shown(first.get('input'))}"  # the input is the parent
    return f"{where(location)}: {first['msg']}{got}{more}"


def _shown(value: Any) -> str:
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= 60 else text[:59] + "…"


def _unique(path: Path, units: Sequence[SpecDataUnit], where: Callable[[int], str]) -> None:
    first: dict[str, int] = {}
    for index, unit in enumerate(units):
        if unit.data_hash in first:
            raise UsageError(
                f"{path}: {where(index)}.data_hash: {unit.data_hash!r} is listed twice, first at "
                f"{where(first[unit.data_hash])}; each data unit once"
            )
        first[unit.data_hash] = index


def _units_from_csv(path: Path) -> list[SpecDataUnit]:
    try:
        text = _read(path).decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: not UTF-8 text (byte {error.start})") from None
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if header is None or tuple(header) != CSV_COLUMNS:
        raise UsageError(f"{path}: line 1: expected the header {','.join(CSV_COLUMNS)}, got {','.join(header or [])!r}")
    units: list[SpecDataUnit] = []
    for cells in rows:
        line = rows.line_num
        if len(cells) != len(CSV_COLUMNS):
            raise UsageError(f"{path}: line {line}: expected {len(CSV_COLUMNS)} fields, got {len(cells)}")
        fields = dict(zip(CSV_COLUMNS, cells, strict=True))
        try:
            units.append(SpecDataUnit.model_validate(_typed(fields, path, line)))
        except ValidationError as error:
            raise UsageError(f"{path}: line {line}, {_first_problem(error, _csv_field)}") from None
    _unique(path, units, lambda index: f"line {index + 2}")
    return units


def _csv_field(location: Sequence[int | str]) -> str:
    return str(location[0]) if location else "(the row)"


def _typed(fields: dict[str, str], path: Path, line: int) -> dict[str, Any]:
    """A CSV row's cells as the JSON file would hold them: numbers as numbers, empty cells as absent."""

    def number(name: str) -> int | None:
        cell = fields[name].strip()
        if not cell:
            return None
        if not cell.isdigit():
            raise UsageError(f"{path}: line {line}, {name}: expected a whole number, got {cell!r}")
        return int(cell)

    def sizes(cell: str) -> list[_Size] | None:
        if not cell.strip():
            return None
        parsed: list[_Size] = []
        for size in cell.split(";"):
            width, _, height = size.strip().partition("x")
            if not (width.isdigit() and height.isdigit()):
                raise UsageError(
                    f"{path}: line {line}, image_sizes: expected WIDTHxHEIGHT;WIDTHxHEIGHT… (e.g. 640x480;800x600), "
                    f"got {size!r}"
                )
            parsed.append((int(width), int(height)))
        return parsed

    typed: dict[str, Any] = {
        "data_hash": fields["data_hash"],
        "title": fields["title"],
        "data_type": fields["data_type"],
        "frames": number("frames"),
        "width": number("width"),
        "height": number("height"),
        "image_sizes": sizes(fields["image_sizes"]),
    }
    return {name: value for name, value in typed.items() if value is not None}
