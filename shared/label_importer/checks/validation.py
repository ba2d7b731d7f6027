"""Pre-flight validation of a label file: every problem, by line and field, before Encord is touched.

Validation streams the file and keeps only an index (which records target which data unit: a few integers
a record), never the labels themselves, so memory grows with the number of records and data units, not with
the size of their labels. The chunker reads the file a second time with that index.
"""

from __future__ import annotations

import bisect
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import orjson
import pydantic

from label_importer.checks.ontology_resolver import (
    OntologyResolver,
    RelationTarget,
    ResolvedClassification,
    ResolvedObject,
    UnresolvedLabel,
    answers_key,
)
from label_importer.model.data_units import DataUnit, DataUnitIndex, UnknownDataUnit
from label_importer.model.label_format import (
    AfterSave,
    Bitmask,
    DynamicAnswer,
    LabelRecord,
    NestedAnswer,
    ObjectLabel,
    Polygons,
    frame_ranges,
)
from label_importer.model.limits import DEFAULT_LIMITS, Limits
from label_importer.model.problems import FILE_LEVEL_CODES, ErrorCode, Problem, problems_from_pydantic, shown_value
from label_importer.model.source_items import LeftOut, NotImported, Record, Rejected, SourceItem

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def parse_record(line: Record) -> LabelRecord | list[Problem]:
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
    """What must agree across the lines of one data unit, so can only be checked with the file in view: one id
    stays one ontology object and is placed at most once on a frame (the SDK refuses a second geometry), a
    relation points at an id the data unit has, a tracked object's dynamic answers sit on frames some line places
    it on (the SDK refuses answers on frames without coordinates), and one classification has one answer per
    frame (or per data unit, if it is global). It keeps ids, frame ranges and answer keys, never geometry, so it
    stays small next to the file.

    A line is remembered only once it agrees with the lines before it (`track`), so a rejected line justifies
    nothing. What needs every line waits for `dangling`."""

    declared: dict[tuple[str, str], tuple[str, str, int]] = field(default_factory=dict)
    """(data hash, id) -> (feature hash, title, line) of the ontology object the id first named."""
    placed: dict[tuple[str, str], list[tuple[list[tuple[int, int]], int]]] = field(default_factory=dict)
    """(data hash, id) -> the frames each of its placements covers, with the placement's line."""
    answered: dict[tuple[str, str], list[tuple[list[tuple[int, int]], int, str]]] = field(default_factory=dict)
    """(data hash, id) -> dynamic answers given on explicit frames: (frames, line, field)."""
    references: list[tuple[str, str, int, str]] = field(default_factory=list)
    classified: dict[tuple[str, str], list[tuple[list[tuple[int, int]], object, int]]] = field(default_factory=dict)
    withdrawn: set[int] = field(default_factory=set)
    """Lines tracked here but rejected afterwards (by a limit, say): they justify no other line."""

    def track(
        self,
        number: int,
        data_hash: str,
        objects: list[tuple[str, ResolvedObject]],
        classifications: list[tuple[str, ResolvedClassification]],
    ) -> list[Problem]:
        """Check a line that is valid on its own against the lines before it; remember it if it agrees.

        All or nothing: a line with a problem leaves no trace, or it would justify (or contradict) later lines
        though it is never imported."""
        problems: list[Problem] = []
        classes: list[tuple[tuple[str, str], list[tuple[int, int]], frozenset[tuple[str, object]]]] = []
        for where, classification in classifications:
            key = (data_hash, classification.ontology.feature_node_hash)
            ranges = _EVERY_FRAME if classification.ontology.is_global else frame_ranges(classification.label.frames)
            answer_id = answers_key((a.attribute, a.value) for a in classification.answers)
            earlier = [entry for entry in self.classified.get(key, []) if entry[2] not in self.withdrawn]
            earlier += [(other_ranges, other, number) for k, other_ranges, other in classes if k == key]
            conflict = next((line for r, other, line in earlier if other != answer_id and _overlap(ranges, r)), None)
            if conflict is not None:
                on = "per data unit (it is global)" if ranges is _EVERY_FRAME else "per frame"
                problems.append(
                    Problem(
                        number,
                        f"{where}.answer",
                        ErrorCode.CONFLICTING_LABELS,
                        f"{classification.ontology.title!r} has a different answer on some of these frames "
                        f"{_on_line(conflict, number)}; a classification has one answer {on}",
                    )
                )
            elif not any(other_ranges == ranges and other == answer_id for other_ranges, other, _ in earlier):
                classes.append((key, ranges, answer_id))  # repeats of one label add nothing to remember
        declared: dict[tuple[str, str], tuple[str, str, int]] = {}
        placed: list[tuple[tuple[str, str], list[tuple[int, int]]]] = []
        answered: list[tuple[tuple[str, str], list[tuple[int, int]], str]] = []
        references: list[tuple[str, str, int, str]] = []
        resolved_labels: list[tuple[str, ResolvedObject | ResolvedClassification]] = [*objects, *classifications]
        for where, resolved in resolved_labels:
            for answer in resolved.answers:
                if isinstance(answer.value, RelationTarget):
                    references.append((data_hash, answer.value.object_id, number, f"{where}.{answer.field}"))
        for where, resolved in objects:
            object_id = resolved.label.id
            if object_id is None:
                continue  # an object of its own: check_record saw all of it
            key = (data_hash, object_id)
            first = self.declared.get(key) or declared.get(key)
            ontology = resolved.ontology
            if first is not None and first[0] != ontology.feature_node_hash:
                same = first[1] == ontology.title
                was = f"{first[1]!r}" + (f" ({first[0]})" if same else "")
                now = f"{ontology.title!r}" + (f" ({ontology.feature_node_hash})" if same else "")
                problems.append(
                    Problem(
                        number,
                        f"{where}.id",
                        ErrorCode.CONFLICTING_LABELS,
                        f"id {object_id!r} is a {was} {_on_line(first[2], number)} but a {now} here; "
                        "one id is one object",
                    )
                )
                continue
            ranges = frame_ranges(resolved.label.frames)
            placed_before = [entry for entry in self.placed.get(key, []) if entry[1] not in self.withdrawn]
            placed_before += [(other, number) for k, other in placed if k == key]
            clashes = [
                (frame, line) for other, line in placed_before if (frame := _first_shared(ranges, other)) is not None
            ]
            if clashes:
                frame, line = clashes[0]
                problems.append(
                    Problem(
                        number,
                        f"{where}.frames",
                        ErrorCode.CONFLICTING_LABELS,
                        f"id {object_id!r} is already placed on frame {frame} {_on_line(line, number)}; an object "
                        "has one geometry per frame, so place it once on each frame",
                        shown_value(frame),
                    )
                )
                continue
            declared.setdefault(key, (ontology.feature_node_hash, ontology.title, number))
            placed.append((key, ranges))
            for answer in resolved.answers:
                if answer.frames is not None:
                    answered.append((key, answer.frames, f"{where}.{answer.frames_field}"))
        if problems:
            return problems
        for key, ranges, answer_id in classes:
            self.classified.setdefault(key, []).append((ranges, answer_id, number))
        for key, first in declared.items():
            self.declared.setdefault(key, first)
        for key, ranges in placed:
            self.placed.setdefault(key, []).append((ranges, number))
        for key, ranges, path in answered:
            self.answered.setdefault(key, []).append((ranges, number, path))
        self.references.extend(references)
        return []

    def withdraw(self, number: int) -> None:
        """Forget what a tracked line justifies, when it is rejected after `track` accepted it."""
        self.withdrawn.add(number)

    def dangling(self) -> Iterator[Problem]:
        """The problems only the whole file shows, sorted by line; each rejects its line.

        A rejected line no longer places its objects, so the answers and relations it alone justified are
        rejected in turn, round after round until nothing changes: what remains imports cleanly on its own, which
        is what `skip-invalid` imports. Each round only revisits the ids the last one's rejections placed."""
        rejected = set(self.withdrawn)
        keys_of_line: dict[int, set[tuple[str, str]]] = {}
        for key, placements in self.placed.items():
            for _, line in placements:
                keys_of_line.setdefault(line, set()).add(key)
        referring: dict[tuple[str, str], list[tuple[int, str]]] = {}
        for data_hash, object_id, line, path in self.references:
            referring.setdefault((data_hash, object_id), []).append((line, path))
        found: list[Problem] = []
        keys = set(referring) | set(self.answered)
        while keys:
            newly: set[int] = set()
            for key in keys:
                placements = self.placed.get(key, [])
                live = [ranges for ranges, line in placements if line not in rejected]
                for line, path in referring.get(key, []):
                    if line not in rejected and not live:
                        found.append(_dangling_relation(line, path, key[1]))
                        newly.add(line)
                covered = _merged([r for ranges in live for r in ranges])
                for ranges, line, path in self.answered.get(key, []):
                    frame = None if line in rejected else _first_uncovered(ranges, covered)
                    if frame is not None:
                        blocked = next((n for r, n in placements if n in rejected and _covers(r, frame)), None)
                        found.append(_answer_without_object(line, path, key[1], frame, covered, blocked))
                        newly.add(line)
            rejected |= newly
            keys = {key for line in newly for key in keys_of_line.get(line, ())}
        yield from sorted(found, key=lambda problem: problem.line)


_EVERY_FRAME = [(0, 2**63 - 1)]
"""The frames a global classification covers, whatever frames its line gives: all of them."""


def _on_line(line: int, number: int) -> str:
    """Where the other label of a conflict is, which may be this same line."""
    return "earlier on this line" if line == number else f"on line {line}"


def _dangling_relation(line: int, path: str, object_id: str) -> Problem:
    """A relation whose target no valid line of the data unit places: Encord would store a hash of nothing."""
    return Problem(
        line,
        path,
        ErrorCode.UNKNOWN_OBJECT_ID,
        f"no object with id {object_id!r} in this data unit; a relation must name the 'id' of another object "
        "of the same data unit",
        object_id,
    )


def _answer_without_object(
    line: int, path: str, object_id: str, frame: int, covered: list[tuple[int, int]], blocked: int | None
) -> Problem:
    """Names the frame, the frames the object is on, and the invalid line that would have placed it there."""
    where = f"only on frames {_frames_text(covered)}" if covered else "on no frame"
    because = f" (line {blocked} places it there, but that line is invalid)" if blocked is not None else ""
    return Problem(
        line,
        path,
        ErrorCode.FRAME_WITHOUT_OBJECT,
        f"frame {frame} has an answer, but {object_id!r} is {where} in the valid lines of this data unit{because}; "
        "a dynamic answer must be on frames where its object is placed",
        shown_value(frame),
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
    limits: Limits = DEFAULT_LIMITS,
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

    def frames_fit(path: str, ranges: list[tuple[int, int]]) -> bool:
        """Report frames past the data unit's end; False if it did."""
        if unit is None:
            return True  # nothing to measure them against; the unknown data unit is reported already
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
            return False
        return True

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
            if answer.frames is None:
                continue
            path = f"{where}.{answer.frames_field}"
            # An object without an id is all here; a tracked one may be placed on more frames by other lines.
            if frames_fit(path, answer.frames) and obj.id is None:
                frame = _first_uncovered(answer.frames, ranges)
                if frame is not None:
                    problems.append(
                        Problem(
                            number,
                            path,
                            ErrorCode.FRAME_WITHOUT_OBJECT,
                            f"frame {frame} has an answer, but the object is only on frames {_frames_text(ranges)}; "
                            "a dynamic answer must be on frames where its object is placed (give the object an "
                            "'id' to place it on more frames from other entries)",
                            shown_value(frame),
                        )
                    )
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
        problems.extend(tracked.track(number, unit.data_hash, resolved_objects, resolved_classifications))
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


def _merged(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive ranges, sorted and joined where they touch or overlap; never expanded into frames."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _first_uncovered(ranges: list[tuple[int, int]], covered: list[tuple[int, int]]) -> int | None:
    """The first frame of `ranges` that `covered` leaves out, or None; a hostile {0, 10**9} range stays cheap."""
    merged = _merged(covered)
    for start, end in sorted(ranges):
        frame = start
        for covered_start, covered_end in merged:
            if frame > end or covered_start > frame:
                break
            frame = max(frame, covered_end + 1)
        if frame <= end:
            return frame
    return None


def _first_shared(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> int | None:
    """The first frame both `a` and `b` cover, or None."""
    shared = [
        max(start, other_start)
        for start, end in a
        for other_start, other_end in b
        if max(start, other_start) <= min(end, other_end)
    ]
    return min(shared, default=None)


def _covers(ranges: list[tuple[int, int]], frame: int) -> bool:
    """Whether the inclusive ranges hold the frame, without expanding them."""
    return any(start <= frame <= end for start, end in ranges)


def _frames_text(ranges: list[tuple[int, int]], shown: int = 6) -> str:
    """`0-3, 5, 7-9` for a person to read; long lists end in `…`."""
    parts = [str(start) if start == end else f"{start}-{end}" for start, end in _merged(ranges)]
    return ", ".join(parts[:shown]) + (", …" if len(parts) > shown else "")


@dataclass
class FileIndex:
    """What pass 1 learned: where each data unit's valid records are, and what was wrong."""

    max_problems: int
    locate: Callable[[Problem], Problem] = lambda problem: problem
    """The source's: places a problem the checks found in a record in the file's own terms (COCO converts
    annotations, so `objects[0].bounding_box` is `annotations[4].bbox` there)."""
    fatal: bool = False
    """A limit of the whole file was hit: it is rejected whatever the error policy."""
    records: int = 0
    left_out: int = 0
    """Records the file itself asks to leave out (COCO: categories mapped to null, crowds under "skip"), and those
    of kinds Encord has no place for."""
    not_imported: Counter[str] = field(default_factory=Counter)
    """Labels not imported because Encord has no place for them, by the reason their source gave."""
    file_problems: list[Problem] = field(default_factory=list)
    """Problems of the whole file (FILE_LEVEL_CODES): few, always kept, listed before any record's."""
    record_problems: list[Problem] = field(default_factory=list)
    """The first `max_problems` problems of records; the rest are only counted."""
    problem_count: int = 0
    row_bytes: dict[str, int] = field(default_factory=dict)
    """data hash -> bytes of its valid records: a row is imported whole, so its size bounds a consumer's memory."""
    invalid_lines: set[int] = field(default_factory=set)
    lines_by_unit: dict[str, list[int]] = field(default_factory=dict)
    """data hash -> line numbers of its valid records, in file order (dict order = first appearance)."""
    accepted_lines: array[int] = field(default_factory=lambda: array("q"))
    """Every record accepted, in file order, with its data unit (by position in `unit_hashes`) beside it in
    `accepted_units`: chunking walks the two rather than parse a record again to learn its data unit. Twelve
    bytes a record; a record rejected later is also in `invalid_lines`."""
    accepted_units: array[int] = field(default_factory=lambda: array("i"))
    unit_hashes: list[str] = field(default_factory=list)
    _unit_positions: dict[str, int] = field(default_factory=dict)
    units_with_invalid_records: set[str] = field(default_factory=set)

    def accept(self, number: int, data_hash: str, size: int) -> None:
        """A valid record of the data unit, `size` bytes of label JSON; records come in file order."""
        self.lines_by_unit.setdefault(data_hash, []).append(number)
        self.row_bytes[data_hash] = self.row_bytes.get(data_hash, 0) + size
        position = self._unit_positions.get(data_hash)
        if position is None:
            position = self._unit_positions[data_hash] = len(self.unit_hashes)
            self.unit_hashes.append(data_hash)
        self.accepted_lines.append(number)
        self.accepted_units.append(position)

    def accepted(self) -> Iterator[tuple[int, int]]:
        """(line, data unit's position in `unit_hashes`) of every record still valid, in file order."""
        for number, position in zip(self.accepted_lines, self.accepted_units, strict=True):
            if number not in self.invalid_lines:
                yield number, position

    def unit_of(self, number: int) -> str | None:
        """The data unit of an accepted record, found by bisection (the lines are in file order)."""
        at = bisect.bisect_left(self.accepted_lines, number)
        if at < len(self.accepted_lines) and self.accepted_lines[at] == number:
            return self.unit_hashes[self.accepted_units[at]]
        return None

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

    def report(self, problems: Iterable[Problem]) -> None:
        for problem in problems:
            self.problem_count += 1
            if problem.code in FILE_LEVEL_CODES:
                self.file_problems.append(problem)
            elif len(self.record_problems) < self.max_problems:
                self.record_problems.append(self.locate(problem))

    @property
    def problems(self) -> list[Problem]:
        """What a report lists: the file's own problems first, then those of records in file order."""
        return self.file_problems + self.record_problems

    @property
    def skipped_rows(self) -> int:
        """Data units that only invalid records target: under `skip-invalid` they are skipped."""
        return len(self.units_with_invalid_records - self.lines_by_unit.keys())


def _too_many_objects(number: int, raw: bytes, limits: Limits) -> list[Problem] | None:
    """A line with more objects than a data unit may hold, found before a model is built for each of them.

    Every object is a JSON object, so counting braces bounds the count from above for free; only a line over
    that bound is parsed (by orjson, without models) to count exactly.
    """
    limit = limits.max_objects_per_data_unit
    if raw.count(b"{") <= limit:
        return None
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None  # parse_record reports it
    objects = document.get("objects") if isinstance(document, dict) else None
    if not isinstance(objects, list) or len(objects) <= limit:
        return None
    message = f"{len(objects)} objects on one line; at most {limit} are allowed (MAX_OBJECTS_PER_DATA_UNIT)"
    return [Problem(number, "objects", ErrorCode.TOO_MANY_OBJECTS, message)]


def index_records(
    items: Iterable[SourceItem], units: DataUnitIndex, resolver: OntologyResolver, index: FileIndex, limits: Limits
) -> FileIndex:
    """Pass 1: check every record a source yields, keep where each data unit's valid records are. Fills and
    returns `index`."""
    tracked = DataUnitTracker()
    objects_per_unit: dict[str, int] = {}
    actions_of_unit: dict[str, tuple[int, AfterSave]] = {}
    """The first line that gave each data unit workflow actions: a data unit's task is moved once."""
    previous = 0
    for item in items:
        if isinstance(item, NotImported):
            index.not_imported.update(item.reasons)
            continue
        if item.number <= previous:  # the index and chunking find records by number, in order
            raise ValueError(f"the source numbered record {item.number} after record {previous}")
        previous = item.number
        index.records += 1
        if index.records > limits.max_records:
            index.fatal = True
            message = f"more than {limits.max_records} records (MAX_RECORDS); split the file"
            index.reject_line(item.number, None, [Problem(item.number, "", ErrorCode.TOO_MANY_RECORDS, message)])
            break
        if isinstance(item, LeftOut):
            index.left_out += 1
            continue
        if isinstance(item, Rejected):
            index.reject_line(item.number, item.data_hash, item.problems)
            continue
        number, raw = item
        crowded = _too_many_objects(number, raw, limits)
        parsed = crowded or parse_record(item)
        if isinstance(parsed, list):
            index.reject_line(number, None, parsed)
            continue
        unit, problems = check_record(number, parsed, units, resolver, tracked, limits)
        tracked_line = unit is not None and not problems
        if tracked_line:
            assert unit is not None  # as tracked_line says
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
            size = index.row_bytes.get(unit.data_hash, 0) + len(raw)
            if size > limits.max_chunk_bytes:
                problems.append(
                    Problem(
                        number,
                        "",
                        ErrorCode.DATA_UNIT_TOO_LARGE,
                        f"{unit.title!r} now has {size} bytes of labels; at most {limits.max_chunk_bytes} are "
                        "allowed per data unit (MAX_CHUNK_BYTES), as a data unit's labels are saved in one request",
                    )
                )
            earlier = actions_of_unit.get(unit.data_hash)
            if parsed.after_save is not None and earlier is not None and earlier[1] != parsed.after_save:
                problems.append(
                    Problem(
                        number,
                        "after_save",
                        ErrorCode.CONFLICTING_LABELS,
                        f"line {earlier[0]} gives {unit.title!r} other workflow actions "
                        f"({earlier[1].model_dump_json(exclude_none=True)}); give them on one line, or the same "
                        "on each",
                        shown_value(parsed.after_save.model_dump(exclude_none=True)),
                    )
                )
        if problems or unit is None:
            if tracked_line:  # over a limit of its data unit: it must not justify other lines either
                tracked.withdraw(number)
            index.reject_line(number, unit.data_hash if unit else None, problems)
            continue
        index.accept(number, unit.data_hash, len(raw))
        if parsed.after_save is not None:
            actions_of_unit.setdefault(unit.data_hash, (number, parsed.after_save))
    for problem in tracked.dangling():
        index.reject_line(problem.line, index.unit_of(problem.line), [problem])
    return index
