"""CVAT items as label records: one record per shape (a `<points>` of several points is several point objects),
one per image for its `<tag>`s, and one per video frame for the tags on it.

A track is one object: its shapes on the frames where it is not `outside` share the label format's `id`
(`track-<id>`), so they are one tracked object and importing the file again adds nothing. An `<attribute>` answers
the ontology attribute of its name (docs/input-formats.md#the-mapping-option); along a track it may change from
frame to frame only if the ontology attribute is dynamic. CVAT's `occluded`, `z_order`, `group_id` and (video)
`keyframe` answer an attribute of that title when the object has one, and are left alone otherwise.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from encord.objects import Classification, Object, OntologyStructure
from encord.objects.attributes import ChecklistAttribute, RadioAttribute

from label_importer.model.data_units import DataUnit
from label_importer.model.limits import Limits
from label_importer.model.matching import Lookup, Unmatched, exactly_one
from label_importer.model.problems import ErrorCode, Problem, did_you_mean
from label_importer.model.source_items import LeftOut, NotImported, Record, Rejected, SourceItem
from label_importer.sources.attribute_answers import NamedValue, answers_for, is_flag, titled
from label_importer.sources.coco.geometry import GeometryMisfit, ImageSize
from label_importer.sources.cvat.document import Item, Meta
from label_importer.sources.cvat.shapes import LEFT_OUT_KINDS, SHAPES, geometries
from label_importer.sources.mapping_option import MAPPING_FILE, MappingOption
from label_importer.sources.name_matching import LEFT_OUT, ObjectNames, UnitNames, folded

OTHER_ELEMENTS = "other CVAT elements (not a box, polygon, polyline, points, mask, skeleton or tag)"
PROPERTIES = ("occluded", "z_order", "group_id", "keyframe")
"""CVAT's own per-shape values that go onto an ontology attribute of the same title, when there is one."""
_WHERE = f"{MAPPING_FILE} (at the root of the zip)"

Unit = tuple[str, ImageSize] | Unmatched
"""A data hash and the size coordinates are in, or why the item has none."""


@dataclass
class _Located:
    """The record last converted: where each part of it is in the document."""

    number: int
    where: str
    unit_field: str
    attributes: dict[str, str] = field(default_factory=dict)
    """An answered attribute's title -> the XPath step of the value it came from."""
    tags: list[str] = field(default_factory=list)


@dataclass
class _Track:
    """One `<track>` being read: its object id, and each static answer its first shape gave."""

    object_id: str
    label: str
    group_id: str | None
    static: dict[str, Any] = field(default_factory=dict)


class CvatRecords:
    def __init__(
        self,
        units: UnitNames,
        ontology: OntologyStructure,
        option: MappingOption,
        meta: Meta,
        video: Unit | None,
        limits: Limits,
    ) -> None:
        self._units = units
        self._limits = limits
        self._ontology = ontology
        self._option = option
        self._meta = meta
        self._video = video
        self._names = ObjectNames(
            ontology,
            option.objects,
            shapes=frozenset().union(*SHAPES.values()),
            format_name="CVAT",
            where=f"'objects' of {_WHERE}",
            noun="label",
        )
        self._objects: dict[str, Object | Unmatched | None] = {}
        self._tags: dict[str, tuple[Classification, str] | Unmatched | None] = {}
        self.number = 0
        self._located: _Located | None = None

    def image(self, item: Item) -> Iterator[SourceItem]:
        element = item.element
        name = element.get("name") or ""
        width, height = _whole(element.get("width")), _whole(element.get("height"))
        found = self._units.image(name, width=width, height=height) if name else _NO_NAME
        unit_field = f"{item.where}/@{'width' if isinstance(found, Unmatched) and found.field else 'name'}"
        unit: Unit = found if isinstance(found, Unmatched) else (found.data_hash, _size(found, width, height))
        counts: Counter[str] = Counter()
        tags = []
        for child in element:
            counts[child.tag] += 1
            where = f"{item.where}/{child.tag}[{counts[child.tag]}]"
            if child.tag == "tag":
                tags.append((child, where))
            elif child.tag not in SHAPES:
                yield from self._not_imported(child.tag)
            else:
                yield self._shape(child, where, unit, unit_field, None)
        if tags:
            yield self.tags(tags, unit, unit_field, None)

    def track(self, item: Item) -> Iterator[SourceItem]:
        element = item.element
        # A track without its id is still one object, told apart from the others by its place in the document.
        track = _Track(f"track-{element.get('id') or item.where}", element.get("label", ""), element.get("group_id"))
        unit, unit_field = self.video_unit(item.where)
        counts: Counter[str] = Counter()
        for child in element:
            counts[child.tag] += 1
            if child.get("outside") == "1":
                continue  # where CVAT ends (or pauses) a track: no shape there
            if child.tag not in SHAPES:
                yield from self._not_imported(child.tag)
                continue
            yield self._shape(child, f"{item.where}/{child.tag}[{counts[child.tag]}]", unit, unit_field, track)

    def video_unit(self, where: str) -> tuple[Unit, str]:
        """The video a track or a video's tag at `where` is on, and where the document names it."""
        if self._video is None:
            problem = Unmatched(
                ErrorCode.INVALID_VALUE, "a <track> or a <tag frame=…> belongs to a video task (<mode>interpolation)"
            )
            return problem, where
        return self._video, f"{where.split(':/')[0]}:/annotations/meta"

    def tags(
        self, tags: list[tuple[ElementTree.Element, str]], unit: Unit, unit_field: str, frame: int | None
    ) -> SourceItem:
        """The tags of one image, or of one video frame, as one record: a checklist's options are one answer."""
        number = self._next()
        if isinstance(unit, Unmatched):
            return Rejected(number, None, [Problem(number, unit_field, unit.code, unit.reason)])
        answers: dict[str, dict[str, Any]] = {}
        paths: list[str] = []
        for element, where in tags:
            label = element.get("label", "")
            target = self._tag(label)
            if target is LEFT_OUT:
                continue
            if isinstance(target, Unmatched):
                return Rejected(number, unit[0], [Problem(number, f"{where}/@label", target.code, target.reason)])
            classification, option = target
            question = classification.attributes[0]
            given = answers.get(classification.feature_node_hash)
            if isinstance(question, ChecklistAttribute):
                if given is None:
                    given = answers[classification.feature_node_hash] = {
                        "feature_hash": classification.feature_node_hash
                    }
                    given["answer"] = []
                    paths.append(where)
                given["answer"].append(option)
                continue
            if given is not None:
                message = f"two tags answer {question.title!r} ({given['answer']!r} and {option!r}); it takes one"
                return Rejected(number, unit[0], [Problem(number, where, ErrorCode.CONFLICTING_LABELS, message)])
            nested = self._tag_attributes(element, question, option)
            if isinstance(nested, Problem):
                return Rejected(number, unit[0], [replace(nested, line=number, field=f"{where}{nested.field}")])
            answer: Any = {"option": option, "attributes": nested} if nested else option
            answers[classification.feature_node_hash] = {
                "feature_hash": classification.feature_node_hash,
                "answer": answer,
            }
            paths.append(where)
        if not answers:
            return LeftOut(number)
        labels = [{**answer, **({"frames": frame} if frame is not None else {})} for answer in answers.values()]
        self._located = _Located(number, tags[0][1], unit_field, tags=paths)
        return Record(number, orjson.dumps({"data_hash": unit[0], "classifications": labels}))

    def locate(self, problem: Problem) -> Problem:
        """A problem the shared checks found in the record last converted, placed on the element it came from."""
        located = self._located
        if located is None or located.number != problem.line or ":/" in problem.field:
            return problem
        head, _, rest = problem.field.partition(".")
        name, _, index = head.partition("[")
        if name in ("data_hash", "data_title"):
            return replace(problem, field=located.unit_field)
        if name == "classifications":
            position = int(index.rstrip("]")) if index.rstrip("]").isdigit() else 0
            return replace(problem, field=located.tags[min(position, len(located.tags) - 1)])
        if rest.startswith("attributes."):
            title = rest.removeprefix("attributes.").split(".")[0].split("[")[0]
            step = located.attributes.get(title)
            return replace(problem, field=f"{located.where}/{step}" if step else located.where)
        if rest.startswith("frames"):
            return replace(problem, field=f"{located.where}/@frame")
        return replace(problem, field=located.where)

    def frame(self, element: ElementTree.Element) -> int | None:
        """The video frame a track shape or a tag is on: CVAT numbers the task's frames."""
        number = _whole(element.get("frame"))
        return None if number is None or number < 0 else self._meta.start_frame + number * self._meta.frame_step

    def _shape(
        self, element: ElementTree.Element, where: str, unit: Unit, unit_field: str, track: _Track | None
    ) -> SourceItem:
        number = self._next()
        kind = element.tag
        if isinstance(unit, Unmatched):
            return Rejected(number, None, [Problem(number, unit_field, unit.code, unit.reason)])
        data_hash, size = unit

        def rejected(at: str, code: ErrorCode, message: str) -> Rejected:
            return Rejected(number, data_hash, [Problem(number, f"{where}{at}", code, message)])

        label = track.label if track else element.get("label", "")
        found = self._object(label)
        if found is LEFT_OUT:
            return LeftOut(number)
        if isinstance(found, Unmatched):
            return rejected("/@label" if track is None else "", found.code, found.reason)
        if found.shape not in SHAPES[kind]:
            return rejected(
                "",
                ErrorCode.SHAPE_MISMATCH,
                f"a CVAT <{kind}> cannot be {found.title!r}, a {found.shape.value}; map the label to another object",
            )
        frame = self.frame(element) if track else None
        if track and frame is None:
            return rejected("/@frame", ErrorCode.INVALID_VALUE, "a track's shape needs frame=, a whole number")
        try:
            placed = geometries(element, found.shape, size, max_pixels=self._limits.max_bitmask_pixels)
        except GeometryMisfit as misfit:
            return rejected(f"/{misfit.field}" if misfit.field else "", misfit.code, misfit.message)
        located = _Located(number, where, unit_field)
        attributes = self._attributes(element, found, track, frame, located)
        if isinstance(attributes, Problem):
            return rejected(attributes.field, attributes.code, attributes.message)
        objects = []
        for geometry_field, geometry in placed:
            label_object: dict[str, Any] = {"feature_hash": found.feature_node_hash, geometry_field: geometry}
            if track is not None:
                label_object |= {"id": track.object_id, "frames": frame}
            if element.get("source") or (track and element.get("source")):
                label_object["manual_annotation"] = element.get("source") == "manual"
            if attributes:
                label_object["attributes"] = attributes
            objects.append(label_object)
        self._located = located
        return Record(number, orjson.dumps({"data_hash": data_hash, "objects": objects}))

    def _attributes(
        self, element: ElementTree.Element, found: Object, track: _Track | None, frame: int | None, located: _Located
    ) -> dict[str, Any] | Problem:
        given = [(child.get("name", ""), child.text or "") for child in element.findall("attribute")]
        properties = {name: element.get(name) for name in PROPERTIES}
        if track is not None and track.group_id is not None:
            properties["group_id"] = track.group_id
        values = [NamedValue(name, value.strip(), is_flag(value)) for name, value in given]
        values += [
            NamedValue(name, value, name in ("occluded", "keyframe")) for name, value in properties.items() if value
        ]
        answers = answers_for(found, values, self._option)
        unplaced = [name for name in answers.unplaced if name in dict(given)]
        if unplaced:
            titles = [attribute.title for attribute in found.attributes]
            return Problem(
                0,
                f"/attribute[@name={unplaced[0]!r}]",
                ErrorCode.UNKNOWN_ATTRIBUTE,
                f"{found.title!r} has no attribute {unplaced[0]!r}{did_you_mean(unplaced[0], titles)}; map it in "
                f"{MAPPING_FILE}'s 'attributes'",
            )
        built: dict[str, Any] = {}
        for title, answer in answers.by_title.items():
            source = answers.sources[title]
            step = (
                f"@{source}" if source in properties and source not in dict(given) else f"attribute[@name={source!r}]"
            )
            located.attributes[title] = step
            attribute = titled(found.attributes, title)
            if track is None:
                built[title] = answer
            elif attribute.dynamic:
                built[title] = [{"answer": answer, "frames": frame}]
            elif title not in track.static:
                track.static[title] = built[title] = answer
            elif track.static[title] != answer:
                return Problem(
                    0,
                    f"/{step}",
                    ErrorCode.CONFLICTING_LABELS,
                    f"{title!r} is {track.static[title]!r} earlier on this track and {answer!r} on frame {frame}, but "
                    "it is not dynamic in the ontology: make it dynamic in Encord, or keep one value along the track",
                )
        return built

    def _not_imported(self, kind: str) -> Iterator[SourceItem]:
        """A shape Encord has no place for: left out, and counted under why."""
        number = self._next()
        yield NotImported(number, (LEFT_OUT_KINDS.get(kind, OTHER_ELEMENTS),))
        yield LeftOut(number)

    def _object(self, label: str) -> Object | Unmatched | None:
        if label not in self._objects:
            self._objects[label] = self._names.object(label)
        return self._objects[label]

    def _tag(self, label: str) -> tuple[Classification, str] | Unmatched | None:
        if label not in self._tags:
            self._tags[label] = self._find_tag(label)
        return self._tags[label]

    def _find_tag(self, label: str) -> tuple[Classification, str] | Unmatched | None:
        """The classification, and the option of its question, a tag's label is: the mapping's `classifications`
        names the question, `options` the option; else the one question with an option of the label's title."""
        mapped = self._option.classifications
        if label in mapped and mapped[label] is LEFT_OUT:
            return LEFT_OUT
        question = mapped.get(label)
        option_title = self._option.options.get(label, label)
        candidates = []
        for classification in self._ontology.classifications:
            first = classification.attributes[0] if classification.attributes else None
            if not isinstance(first, (RadioAttribute, ChecklistAttribute)):
                continue
            if (
                question is not None
                and question != classification.feature_node_hash
                and folded(question) != folded(first.title)
            ):
                continue
            option = titled(first.options, option_title)
            if option is not None:
                candidates.append((classification, str(option.title)))
        lookup = Lookup(
            "the ontology",
            "classification",
            ErrorCode.UNKNOWN_CLASSIFICATION,
            ErrorCode.AMBIGUOUS_TITLE,
            f"name the question in {_WHERE}'s 'classifications'",
        )
        return exactly_one(
            candidates,
            lookup,
            f"with an option {option_title!r} for tag {label!r}",
            lambda found: f"{found[0].attributes[0].title!r} ({found[0].feature_node_hash})",
            lambda: (
                f"; map the tag in {_WHERE}: 'classifications' names the question, 'options' the option "
                "(null in 'classifications' leaves the tag out)"
            ),
        )

    def _tag_attributes(self, element: ElementTree.Element, question: Any, option: str) -> dict[str, Any] | Problem:
        """A tag's `<attribute>`s answer the attributes nested under its option."""
        given = [(child.get("name", ""), (child.text or "").strip()) for child in element.findall("attribute")]
        if not given:
            return {}
        nested = titled(question.options, option)
        answers = answers_for(nested, [NamedValue(name, value, is_flag(value)) for name, value in given], self._option)
        if answers.unplaced:
            return Problem(
                0,
                f"/attribute[@name={answers.unplaced[0]!r}]",
                ErrorCode.UNKNOWN_ATTRIBUTE,
                f"option {option!r} of {question.title!r} has no nested attribute {answers.unplaced[0]!r}",
            )
        return answers.by_title

    def _next(self) -> int:
        self.number += 1
        return self.number


_NO_NAME = Unmatched(ErrorCode.MISSING_FIELD, "an <image> needs name=, the image's file name")


def _size(unit: DataUnit, width: int | None, height: int | None) -> ImageSize:
    return ImageSize(width or unit.width or 0, height or unit.height or 0)


def _whole(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
