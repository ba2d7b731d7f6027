"""Pre-flight validation of a label file: every problem, by line and field, before Encord is touched.

Validation streams the file and keeps only an index (which lines target which data unit), never the
labels themselves, so memory grows with the number of data units and not with the file size. The
chunker reads the file a second time with that index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import orjson
import pydantic

from label_importer.data_units import DataUnit, DataUnitIndex, UnknownDataUnit
from label_importer.label_format import (
    Bitmask,
    DynamicAnswer,
    Header,
    LabelRecord,
    NestedAnswer,
    ObjectLabel,
    Polygons,
    frame_ranges,
    is_header,
)
from label_importer.ontology_resolver import (
    OntologyResolver,
    RelationTarget,
    ResolvedClassification,
    ResolvedObject,
    UnresolvedLabel,
    answer_key,
)
from label_importer.problems import ErrorCode, Problem, problems_from_pydantic, shown_value

Line = tuple[int, bytes]
"""A 1-based line number and the raw bytes of that line."""


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a hostile or accidental file from exhausting a function; each is configurable."""

    max_file_bytes: int = 1 << 30
    """Validation runs at about 5 MB/s (bench/validator_memory.py): 1 GiB fits the 15-minute Lambda limit."""
    max_line_bytes: int = 8 << 20
    max_records: int = 10_000_000
    max_objects_per_data_unit: int = 10_000
    max_polygon_points: int = 50_000
    max_bitmask_pixels: int = 100_000_000
    max_answer_depth: int = 8
    """Nested attribute answers (option -> attribute -> option ...); raw JSON depth is capped by the parser."""


def parse_header(line: Line) -> tuple[Header | None, list[Problem]]:
    """Return the header if `line` is one (None if it is a label record), with its problems."""
    number, raw = line
    try:
        candidate = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, []  # not a header; reported as a record with the record's own error
    if not (isinstance(candidate, dict) and is_header(candidate)):
        return None, []
    try:
        return Header.model_validate_json(raw), []
    except pydantic.ValidationError as error:
        return Header(), problems_from_pydantic(number, error.errors(), prefix="header")


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def parse_record(line: Line) -> LabelRecord | list[Problem]:
    number, raw = line
    if raw.startswith(_UTF16_BOMS):
        return [Problem(number, "", ErrorCode.NOT_UTF8, "the file is UTF-16; save it as UTF-8")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return [
            Problem(
                number,
                "",
                ErrorCode.NOT_UTF8,
                f"the line is not UTF-8 (byte {error.start + 1} is {raw[error.start : error.start + 1]!r}); "
                "save the file as UTF-8",
            )
        ]
    try:
        return LabelRecord.model_validate_json(text)
    except pydantic.ValidationError as error:
        return problems_from_pydantic(number, error.errors())


@dataclass
class DataUnitTracker:
    """What must agree across the lines of one data unit: one id stays one ontology object, a relation
    points at an id the data unit has, and one classification has one answer per frame. It keeps ids,
    frame ranges and answer keys, never geometry, so it stays small next to the file."""

    declared: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    references: list[tuple[str, str, int, str]] = field(default_factory=list)
    classified: dict[tuple[str, str], list[tuple[list[tuple[int, int]], object, int]]] = field(default_factory=dict)

    def classify(self, data_hash: str, resolved: ResolvedClassification, number: int, path: str) -> Problem | None:
        ranges = frame_ranges(resolved.label.frames)
        answer = tuple((a.attribute.feature_node_hash, answer_key(a.value)) for a in resolved.answers)
        earlier = self.classified.setdefault((data_hash, resolved.ontology.feature_node_hash), [])
        for other_ranges, other_answer, other_line in earlier:
            if other_answer != answer and _overlap(ranges, other_ranges):
                return Problem(
                    number,
                    path,
                    ErrorCode.CONFLICTING_LABELS,
                    f"{resolved.ontology.title!r} has a different answer on some of these frames on line "
                    f"{other_line}; a classification has one answer per frame",
                )
        if not any(other_ranges == ranges and other_answer == answer for other_ranges, other_answer, _ in earlier):
            earlier.append((ranges, answer, number))  # repeats of one label add nothing to remember
        return None

    def declare(self, data_hash: str, object_id: str, title: str, number: int, path: str) -> Problem | None:
        first = self.declared.setdefault((data_hash, object_id), (title, number))
        if first[0] == title:
            return None
        return Problem(
            number,
            path,
            ErrorCode.CONFLICTING_LABELS,
            f"id {object_id!r} is a {first[0]!r} on line {first[1]} but a {title!r} here; one id is one object",
        )

    def refer(self, data_hash: str, object_id: str, number: int, path: str) -> None:
        self.references.append((data_hash, object_id, number, path))

    def dangling(self) -> Iterator[Problem]:
        for data_hash, object_id, number, path in self.references:
            if (data_hash, object_id) not in self.declared:
                yield Problem(
                    number,
                    path,
                    ErrorCode.UNKNOWN_OBJECT_ID,
                    f"no object with id {object_id!r} in this data unit; a relation must name the 'id' of "
                    "another object of the same data unit",
                    object_id,
                )


def _bitmask_misfit(mask: Bitmask, unit: DataUnit, ranges: list[tuple[int, int]]) -> str | None:
    """Why the mask does not fit a frame it is placed on, or None. Only an image group's frames differ in size,
    so only they are checked one by one (and they are as many as its images, never a hostile range)."""
    size = (mask.width, mask.height)
    if not unit.image_sizes:
        if size == (unit.width, unit.height):
            return None
        return f"the mask is {mask.width}x{mask.height} but {unit.title!r} is {unit.width}x{unit.height}"
    last = unit.number_of_frames - 1
    for start, end in ranges:
        for frame in range(min(start, last), min(end, last) + 1):
            width, height = unit.image_sizes[frame]
            if size != (width, height):
                return f"the mask is {mask.width}x{mask.height} but image {frame} of {unit.title!r} is {width}x{height}"
    return None


def check_record(
    number: int,
    record: LabelRecord,
    units: DataUnitIndex,
    resolver: OntologyResolver,
    tracked: DataUnitTracker | None = None,
    limits: Limits = Limits(),
) -> tuple[DataUnit | None, list[Problem]]:
    """Check one well-formed record against the project's data units and ontology."""
    problems: list[Problem] = list(_over_limits(number, record, limits))
    resolved_objects: list[tuple[str, ResolvedObject]] = []
    resolved_classifications: list[tuple[str, ResolvedClassification]] = []
    try:
        unit: DataUnit | None = units.find(record.data_hash, record.data_title)
    except UnknownDataUnit as error:
        unit = None
        problems.append(Problem(number, error.field, error.code, error.message))

    def frames_fit(path: str, ranges: list[tuple[int, int]]) -> None:
        if unit is None:
            return
        last = max(end for _, end in ranges)
        if last >= unit.number_of_frames:
            frame_word = (
                "frame 0 only (it is an image)"
                if unit.number_of_frames == 1
                else (f"frames 0 to {unit.number_of_frames - 1}")
            )
            problems.append(
                Problem(
                    number,
                    path,
                    ErrorCode.FRAME_OUT_OF_RANGE,
                    f"frame {last} is past the end: {unit.title!r} has {frame_word}",
                    shown_value(last),
                )
            )

    for index, obj in enumerate(record.objects):
        where = f"objects[{index}]"
        try:
            resolved = resolver.resolve_object(obj)
        except UnresolvedLabel as error:
            problems.extend(Problem(number, f"{where}.{i.field}", i.code, i.message) for i in error.problems)
            continue
        resolved_objects.append((where, resolved))
        ranges = frame_ranges(obj.frames)
        frames_fit(f"{where}.frames", ranges)
        for answer in resolved.answers:
            if answer.frames is not None:
                frames_fit(f"{where}.attributes.{answer.attribute.title}", answer.frames)
        if obj.bitmask is not None and unit is not None:
            misfit = _bitmask_misfit(obj.bitmask, unit, ranges)
            if misfit is not None:
                problems.append(Problem(number, f"{where}.bitmask", ErrorCode.BITMASK_SIZE_MISMATCH, misfit))
    for index, classification in enumerate(record.classifications):
        where = f"classifications[{index}]"
        try:
            resolved_classifications.append((where, resolver.resolve_classification(classification)))
        except UnresolvedLabel as error:
            problems.extend(Problem(number, f"{where}.{i.field}", i.code, i.message) for i in error.problems)
            continue
        frames_fit(f"{where}.frames", frame_ranges(classification.frames))
    if tracked is not None and unit is not None and not problems:
        problems.extend(_track(number, unit.data_hash, resolved_objects, resolved_classifications, tracked))
    return unit, problems


def _over_limits(number: int, record: LabelRecord, limits: Limits) -> Iterator[Problem]:
    for index, obj in enumerate(record.objects):
        where = f"objects[{index}]"
        points = _point_count(obj)
        if points > limits.max_polygon_points:
            yield Problem(
                number,
                f"{where}.{obj.geometry_field}",
                ErrorCode.TOO_MANY_POINTS,
                f"{points} points; at most {limits.max_polygon_points} are allowed (MAX_POLYGON_POINTS)",
            )
        if obj.bitmask is not None and obj.bitmask.width * obj.bitmask.height > limits.max_bitmask_pixels:
            yield Problem(
                number,
                f"{where}.bitmask",
                ErrorCode.BITMASK_TOO_LARGE,
                f"{obj.bitmask.width}x{obj.bitmask.height} pixels; at most {limits.max_bitmask_pixels} "
                "are allowed (MAX_BITMASK_PIXELS)",
            )
        for title, answer in obj.attributes.items():
            if _answer_depth(answer) > limits.max_answer_depth:
                yield Problem(
                    number,
                    f"{where}.attributes.{title}",
                    ErrorCode.NESTING_TOO_DEEP,
                    f"answers nest deeper than {limits.max_answer_depth} levels (MAX_ANSWER_DEPTH)",
                )
    for index, classification in enumerate(record.classifications):
        if _answer_depth(classification.answer) > limits.max_answer_depth:
            yield Problem(
                number,
                f"classifications[{index}].answer",
                ErrorCode.NESTING_TOO_DEEP,
                f"answers nest deeper than {limits.max_answer_depth} levels (MAX_ANSWER_DEPTH)",
            )


def _point_count(obj: ObjectLabel) -> int:
    if isinstance(obj.polygon, Polygons):
        return sum(len(ring) for polygon in obj.polygon.polygons for ring in (polygon.outer, *polygon.holes))
    return len(obj.polygon or obj.polyline or [])


def _answer_depth(answer: object) -> int:
    if isinstance(answer, NestedAnswer):
        return 1 + max((_answer_depth(nested) for nested in answer.attributes.values()), default=0)
    if isinstance(answer, list):
        return max((_answer_depth(item.answer) for item in answer if isinstance(item, DynamicAnswer)), default=0)
    return 0


def _overlap(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> bool:
    return any(start <= other_end and other_start <= end for start, end in a for other_start, other_end in b)


def _track(
    number: int,
    data_hash: str,
    resolved_objects: list[tuple[str, ResolvedObject]],
    resolved_classifications: list[tuple[str, ResolvedClassification]],
    tracked: DataUnitTracker,
) -> Iterator[Problem]:
    for where, classification in resolved_classifications:
        conflict = tracked.classify(data_hash, classification, number, f"{where}.answer")
        if conflict is not None:
            yield conflict
    for where, resolved in resolved_objects:
        if resolved.label.id is not None:
            conflict = tracked.declare(data_hash, resolved.label.id, resolved.ontology.title, number, f"{where}.id")
            if conflict is not None:
                yield conflict
        for answer in resolved.answers:
            if isinstance(answer.value, RelationTarget):
                tracked.refer(data_hash, answer.value.object_id, number, f"{where}.attributes.{answer.attribute.title}")


@dataclass
class FileIndex:
    """What pass 1 learned: where each data unit's valid records are, and what was wrong."""

    max_problems: int
    locate: Callable[[Problem], Problem] | None = None
    """Places a problem found in a record in the file's own terms, when records are converted (COCO)."""
    fatal: bool = False
    """A limit of the whole file was hit: it is rejected whatever the error policy."""
    records: int = 0
    left_out: int = 0
    """Records the file itself asks to leave out (COCO: categories mapped to null, crowds under "skip")."""
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    invalid_lines: set[int] = field(default_factory=set)
    lines_by_unit: dict[str, list[int]] = field(default_factory=dict)
    """data hash -> line numbers of its valid records, in file order (dict order = first appearance)."""
    units_with_invalid_records: set[str] = field(default_factory=set)

    def reject_line(self, number: int, data_hash: str | None, problems: list[Problem]) -> None:
        """Mark a line invalid (possibly after it was first accepted, when a later line shows it wrong)."""
        self.report(problems)
        self.invalid_lines.add(number)
        if data_hash is None:
            return
        self.units_with_invalid_records.add(data_hash)
        lines = self.lines_by_unit.get(data_hash, [])
        if number in lines:
            lines.remove(number)
            if not lines:
                del self.lines_by_unit[data_hash]

    def reject_record(self, number: int, data_hash: str | None, problems: list[Problem]) -> None:
        """A record rejected before it could be read as a line (too long, or not convertible)."""
        self.records += 1
        self.reject_line(number, data_hash, problems)

    def leave_out(self) -> None:
        self.records += 1
        self.left_out += 1

    def report(self, problems: Iterable[Problem]) -> None:
        for problem in problems:
            self.problem_count += 1
            if len(self.problems) < self.max_problems:
                self.problems.append(self.locate(problem) if self.locate else problem)

    @property
    def skipped_rows(self) -> int:
        """Data units that only invalid records target: under `skip-invalid` they are skipped."""
        return len(self.units_with_invalid_records - self.lines_by_unit.keys())

    def line_too_long(self, number: int, length: int, limit: int) -> None:
        message = f"the line is {length} bytes long; at most {limit} are allowed (MAX_LINE_BYTES)"
        self.reject_record(number, None, [Problem(number, "", ErrorCode.LINE_TOO_LONG, message)])


def index_records(
    lines: Iterable[Line], units: DataUnitIndex, resolver: OntologyResolver, index: FileIndex, limits: Limits
) -> FileIndex:
    """Pass 1: check every line, keep where each data unit's valid lines are. Fills and returns `index`."""
    tracked = DataUnitTracker()
    objects_per_unit: dict[str, int] = {}
    for number, raw in lines:
        index.records += 1
        if index.records > limits.max_records:
            index.fatal = True
            message = f"more than {limits.max_records} records (MAX_RECORDS); split the file"
            index.reject_line(number, None, [Problem(number, "", ErrorCode.TOO_MANY_RECORDS, message)])
            break
        parsed = parse_record((number, raw))
        if isinstance(parsed, list):
            index.reject_line(number, None, parsed)
            continue
        unit, problems = check_record(number, parsed, units, resolver, tracked, limits)
        if unit is not None and not problems:
            count = objects_per_unit[unit.data_hash] = objects_per_unit.get(unit.data_hash, 0) + len(parsed.objects)
            if count > limits.max_objects_per_data_unit:
                problems.append(
                    Problem(
                        number,
                        "objects",
                        ErrorCode.TOO_MANY_OBJECTS,
                        f"{unit.title!r} now has {count} object placements; at most "
                        f"{limits.max_objects_per_data_unit} are allowed (MAX_OBJECTS_PER_DATA_UNIT)",
                    )
                )
        if problems or unit is None:
            index.reject_line(number, unit.data_hash if unit else None, problems)
            continue
        index.lines_by_unit.setdefault(unit.data_hash, []).append(number)
    for problem in tracked.dangling():
        data_hash = next(h for h, lines in index.lines_by_unit.items() if problem.line in lines)
        index.reject_line(problem.line, data_hash, [problem])
    return index
