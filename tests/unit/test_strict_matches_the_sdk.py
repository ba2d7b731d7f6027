"""Strict is strict: a data unit's records pass validation exactly when the encord SDK takes them.

Worlds are generated, not taken from the demo project: an ontology with objects of every shape (skeletons with
and without a template), radio / checklist / text attributes nested three deep under radio options, dynamic
attributes (also where Encord takes none), global and frame classifications, titles with spaces and titles
shared at several levels; a data unit (an image, or a video of a few frames); and records for it. A world makes
no slip, one kind of slip, or every kind (SLIPS: answers on frames the object is not on, nested answers under a
dynamic attribute, an id placed twice on a frame or naming two objects of one title, relations to ids nobody
has, frames past the end, ...): one kind at a time, so that no slip hides behind another.

The records are JSON built from the ontology alone and parsed with `LabelRecord.model_validate`, as a file
would be; the strategies know the format from its documentation, not from the validator. The oracle is the
import itself: `LabelBuilder.apply` onto a blank `LabelRowV2` built offline (the SDK's checks, and the
builder's own where the SDK would save nonsense quietly: frames past the end, relations to no object, one id
for two objects), then the row written out with `to_encord_dict` and read back with `from_labels_dict`, as
the next reader does.

Two facts: the validator (check_record with one DataUnitTracker across the records, then `dangling`, which is
what index_records does) finds no problem exactly when applying all the records raises nothing; and whatever
it finds, the records it leaves valid (what `skip-invalid` imports) apply cleanly. The validator never raises:
any exception it throws fails the test.

Not generated, because the import has no counterpart to check them against: bitmasks of another size than the
data unit (BITMASK_SIZE_MISMATCH), the size limits, and data units the project lacks.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from encord.objects import LabelRowV2, Object, OntologyStructure, Shape
from encord.objects.attributes import Attribute, ChecklistAttribute, RadioAttribute, TextAttribute
from encord.objects.classification import OntologyClassificationLevel
from encord.objects.skeleton_template import SkeletonTemplate, SkeletonTemplateCoordinate
from encord.ontology import Ontology
from encord.orm.label_row import LabelRowMetadata
from encord.orm.ontology import Ontology as OrmOntology
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from label_importer.checks.ontology_resolver import OntologyResolver, UnresolvedLabel
from label_importer.checks.validation import DataUnitTracker, check_record
from label_importer.encord_target.label_builder import LabelBuilder
from label_importer.model.data_units import DataUnit, DataUnitIndex
from label_importer.model.label_format import LabelRecord, Mode
from label_importer.model.messages import ChunkRow, RecordLabels
from label_importer.model.problems import ErrorCode, Problem

SHAPES = [
    Shape.BOUNDING_BOX,
    Shape.ROTATABLE_BOUNDING_BOX,
    Shape.POLYGON,
    Shape.POLYLINE,
    Shape.POINT,
    Shape.BITMASK,
    Shape.SKELETON,
]
TITLES = ["Fruit", "Red car", "Any Other Colours?", "Note", "Fruit", "Size", "Note #relation", "Parent #relation"]
"""Titles with spaces, one of them twice in the pool (so siblings share it), and reused at every level."""
OPTION_TITLES = ["Yes", "No", "Fruit", "Red car", "Yes"]
IDS = ["a", "b", "c"]
"""Few, so that lines share ids (one object across lines) and relations usually find their target."""
WIDTH, HEIGHT = 4, 3


# --- the world -----------------------------------------------------------------------------------------------

SLIPS = (
    "no template",  # a skeleton object the ontology has no template for
    "dynamic where none",  # nested attributes and classification questions the ontology marks dynamic
    "no question",  # a classification without a question
    "nested under dynamic",  # answers nested under an option of a dynamic attribute
    "off frames",  # dynamic answers on frames no placement of the object covers
    "twice",  # an id placed twice on one frame
    "two objects",  # one id naming two ontology objects (perhaps sharing a title)
    "dangling relation",  # a relation to an id no object has
    "classification conflict",  # one classification with two answers on one frame
    "global conflict",  # a global classification with two answers (on different frames: it has one per data unit)
    "past end",  # a frame past the data unit's last
    "wrong shape",  # a geometry the object's shape is not
    "ambiguous",  # a title siblings share where the feature hash is needed
    "other option",  # nested answers meant for another option of the radio
    "skeleton points",  # a skeleton point missing, or one the template lacks
)
"""What a nearly valid file gets wrong. A world makes no slip, one kind of slip, or every kind: one kind at a time
keeps each from hiding behind another, and all at once checks that they combine."""


@dataclass
class World:
    """One generated case: an ontology, a data unit, the JSON lines of a file for it, and the slips it makes."""

    structure: OntologyStructure
    unit: DataUnit
    records: list[dict[str, Any]]
    slips: frozenset[str]

    def __repr__(self) -> str:  # what hypothesis prints for a falsifying example
        lines = "\n".join(json.dumps(record) for record in self.records)
        ontology = json.dumps(self.structure.to_dict())
        return f"slips: {sorted(self.slips)}\nontology: {ontology}\nframes: {self.unit.number_of_frames}\n{lines}"


def _one_in(draw: st.DrawFn, n: int) -> bool:
    """True about once in `n` draws. Hypothesis favours the ends of a range, so the rare case is a middle value."""
    return draw(st.integers(1, n)) == (n + 1) // 2


@dataclass
class _Slips:
    """The slips one world makes."""

    draw: st.DrawFn
    enabled: frozenset[str]

    def __call__(self, kind: str, one_in: int = 3) -> bool:
        """Whether to make this slip here: only a world that makes this kind, and then now and then."""
        assert kind in SLIPS, kind
        return kind in self.enabled and _one_in(self.draw, one_in)


def _hashes() -> Callable[[], str]:
    """Feature hashes in Encord's shape (8 characters), unique in one ontology and never equal to a title."""
    counter = itertools.count()
    return lambda: f"f{next(counter):07d}"


Adder = Callable[[type[Attribute], str, str], Attribute]
"""Adds an attribute (kind, title, feature hash) to an object, a classification or a radio option."""


def _attributes(draw: st.DrawFn, add: Adder, new_hash: Callable[[], str], slip: _Slips, depth: int) -> None:
    """Attributes under one owner, the options of radios carrying attributes of their own down to depth 3."""
    for _ in range(draw(st.integers(1 if depth == 1 else 0, 2 if depth < 3 else 0))):
        kind = draw(st.sampled_from([RadioAttribute, ChecklistAttribute, TextAttribute]))
        attribute = add(kind, draw(st.sampled_from(TITLES)), new_hash())
        if isinstance(attribute, ChecklistAttribute):
            for _ in range(draw(st.integers(1, 3))):
                attribute.add_option(draw(st.sampled_from(OPTION_TITLES)), feature_node_hash=new_hash())
        elif isinstance(attribute, RadioAttribute):
            for _ in range(draw(st.integers(1, 3))):
                option = attribute.add_option(draw(st.sampled_from(OPTION_TITLES)), feature_node_hash=new_hash())

                def nested(kind: type[Attribute], title: str, feature_hash: str, option: Any = option) -> Attribute:
                    added = option.add_nested_attribute(kind, title, feature_node_hash=feature_hash)
                    added.dynamic = slip("dynamic where none")  # the SDK's builders cannot; a stored one may
                    return added

                _attributes(draw, nested, new_hash, slip, depth + 1)


def _skeleton(draw: st.DrawFn, structure: OntologyStructure, title: str, new_hash: Callable[[], str]) -> Object:
    """A skeleton object and its template, linked by feature hash as `add_skeleton_object` links them."""
    names = draw(st.lists(st.sampled_from(["head", "left hand", "tail", "Fruit"]), min_size=1, unique=True))
    template = SkeletonTemplate(
        name=f"template {len(structure.skeleton_templates)}",
        width=1.0,
        height=1.0,
        skeleton={
            str(i): SkeletonTemplateCoordinate(x=0.5, y=0.5, name=name, feature_hash=new_hash())
            for i, name in enumerate(names)
        },
        skeleton_edges={},
    )
    obj, _ = structure.add_skeleton_object(title, template, feature_node_hash=new_hash())
    return obj


def _rich_object(draw: st.DrawFn, structure: OntologyStructure, new_hash: Callable[[], str], slip: _Slips) -> Object:
    """An object shaped like the seed's Person and Whale, titles still drawn from the pools, so that every slip
    has something to slip on: a dynamic radio and a static one whose options carry attributes, and a relation."""
    shape = draw(st.sampled_from(SHAPES))
    title = draw(st.sampled_from(TITLES))
    if shape is Shape.SKELETON:
        obj = _skeleton(draw, structure, title, new_hash)
    else:
        obj = structure.add_object(title, shape, feature_node_hash=new_hash())
    for dynamic in (True, False):
        title = draw(st.sampled_from(TITLES))
        radio = obj.add_attribute(RadioAttribute, title, feature_node_hash=new_hash(), dynamic=dynamic)
        for _ in range(2):
            option = radio.add_option(draw(st.sampled_from(OPTION_TITLES)), feature_node_hash=new_hash())
            nested = option.add_nested_attribute(
                TextAttribute, draw(st.sampled_from(TITLES)), feature_node_hash=new_hash()
            )
            nested.dynamic = slip("dynamic where none", 2)
    obj.add_attribute(TextAttribute, "Parent #relation", feature_node_hash=new_hash())
    return obj


def _ontology(draw: st.DrawFn, slip: _Slips) -> tuple[OntologyStructure, list[Object]]:
    """The ontology, and the objects labels should use often (those built to slip on)."""
    structure = OntologyStructure()
    new_hash = _hashes()
    focus = [_rich_object(draw, structure, new_hash, slip)] if slip.enabled or draw(st.booleans()) else []
    if "skeleton points" in slip.enabled:
        focus.append(_skeleton(draw, structure, draw(st.sampled_from(TITLES)), new_hash))
    if "no template" in slip.enabled:
        focus.append(structure.add_object(draw(st.sampled_from(TITLES)), Shape.SKELETON, feature_node_hash=new_hash()))
    if "two objects" in slip.enabled:  # another object of the same title and shape: only its hash tells them apart
        twin = focus[0]
        if twin.shape is Shape.SKELETON:
            focus.append(_skeleton(draw, structure, twin.title, new_hash))
        else:
            focus.append(structure.add_object(twin.title, twin.shape, feature_node_hash=new_hash()))
    for _ in range(draw(st.integers(0 if focus else 1, 3))):
        shape = draw(st.sampled_from(SHAPES))
        title = draw(st.sampled_from(TITLES))
        if shape is Shape.SKELETON and not slip("no template", 2):
            obj = _skeleton(draw, structure, title, new_hash)
        else:  # a skeleton added like this has no template, like one whose template was deleted
            obj = structure.add_object(title, shape, feature_node_hash=new_hash())

        def on_object(kind: type[Attribute], title: str, feature_hash: str, obj: Any = obj) -> Attribute:
            return obj.add_attribute(kind, title, feature_node_hash=feature_hash, dynamic=draw(st.booleans()))

        _attributes(draw, on_object, new_hash, slip, depth=1)
    classified = slip.enabled & {"no question", "dynamic where none", "classification conflict"}
    for _ in range(draw(st.integers(1 if classified else 0, 3))):
        is_global = _one_in(draw, 2 if "classification conflict" in slip.enabled else 4)
        level = OntologyClassificationLevel.GLOBAL if is_global else None
        classification = structure.add_classification(feature_node_hash=new_hash(), level=level)
        if slip("no question", 2):
            continue
        kind = draw(st.sampled_from([RadioAttribute, ChecklistAttribute, TextAttribute]))
        question = classification.add_attribute(kind, draw(st.sampled_from(TITLES)), feature_node_hash=new_hash())
        question.dynamic = slip("dynamic where none", 2)
        for _ in range(0 if kind is TextAttribute else draw(st.integers(1, 3))):
            option = question.add_option(draw(st.sampled_from(OPTION_TITLES)), feature_node_hash=new_hash())
            if isinstance(question, RadioAttribute):

                def nested(kind: type[Attribute], title: str, feature_hash: str, option: Any = option) -> Attribute:
                    return option.add_nested_attribute(kind, title, feature_node_hash=feature_hash)

                _attributes(draw, nested, new_hash, slip, depth=2)
    return structure, focus


def _key(draw: st.DrawFn, item: Any, siblings: list[Any], slip: _Slips) -> str:
    """How a file names an ontology item: by title, or by feature hash, which a title siblings share needs."""
    shared = sum(sibling.title == item.title for sibling in siblings) > 1
    by_hash = not slip("ambiguous", 2) if shared else _one_in(draw, 5)
    return str(item.feature_node_hash) if by_hash else str(item.title)


def _frames(draw: st.DrawFn, frames: int, slip: _Slips, pool: list[int] | None = None) -> Any:
    """Frames as the format writes them (a frame, a range, or a list), drawn from `pool` (the data unit's frames
    by default)."""
    if slip("past end"):
        return frames
    chosen = sorted(draw(st.lists(st.sampled_from(pool or range(frames)), min_size=1, max_size=3, unique=True)))
    if len(chosen) == 1:
        return chosen[0]
    if chosen == list(range(chosen[0], chosen[-1] + 1)) and draw(st.booleans()):
        return {"start": chosen[0], "end": chosen[-1]}
    return chosen


def _covered(frames: Any) -> list[int]:
    """The frames a `frames` value of the format names (they are few here: the data units are short)."""
    items = frames if isinstance(frames, list) else [frames]
    return [f for item in items for f in (range(item["start"], item["end"] + 1) if isinstance(item, dict) else [item])]


@dataclass
class _Placed:
    """An object entry whose attributes wait until every placement of the world is known."""

    label: dict[str, Any]
    obj: Object
    frames: list[int]


class _Answers:
    """Answers to attributes, nested ones included, as the format's documentation spells them; dynamic answers
    on frames where their object is placed (by any line, for an object with an id)."""

    def __init__(self, draw: st.DrawFn, slip: _Slips, frames: int, ids: list[str]) -> None:
        self.draw, self.slip, self.frames, self.ids = draw, slip, frames, ids

    def of(self, attributes: list[Attribute], object_frames: list[int], *, top_level: bool) -> dict[str, Any]:
        draw, answers = self.draw, {}
        for attribute in attributes:
            if _one_in(draw, 4):
                continue
            key = _key(draw, attribute, attributes, self.slip)
            if top_level and attribute.dynamic and not _one_in(draw, 5):
                answers[key] = [
                    {"answer": self.one(attribute, object_frames), "frames": self.dynamic_frames(object_frames)}
                    for _ in range(draw(st.integers(1, 2)))
                ]
            else:
                answers[key] = self.one(attribute, object_frames)
        return answers

    def dynamic_frames(self, object_frames: list[int]) -> Any:
        elsewhere = [frame for frame in range(self.frames) if frame not in object_frames]
        pool = elsewhere if elsewhere and self.slip("off frames", 2) else object_frames
        return _frames(self.draw, self.frames, self.slip, pool or None)

    def one(self, attribute: Attribute, object_frames: list[int]) -> Any:
        draw, slip = self.draw, self.slip
        if isinstance(attribute, TextAttribute):
            if attribute.title.endswith("#relation") and draw(st.booleans()):
                if slip("dangling relation", 2):
                    return {"relation_to": "nobody"}
                if self.ids:
                    return {"relation_to": draw(st.sampled_from(self.ids))}
            return draw(st.sampled_from(["", "a note", "with spaces, and commas"]))
        options = list(attribute.options)
        if isinstance(attribute, ChecklistAttribute):
            chosen = draw(st.lists(st.sampled_from(range(len(options))), unique=True)) if options else []
            return [_key(draw, options[index], options, slip) for index in chosen]
        option = draw(st.sampled_from(options))
        nested_under = draw(st.sampled_from(options)) if slip("other option") else option
        nested = list(nested_under.attributes)
        if not nested or (attribute.dynamic and not slip("nested under dynamic", 1)) or _one_in(draw, 3):
            return _key(draw, option, options, slip)
        answers = self.of(nested, object_frames, top_level=False)
        return {"option": _key(draw, option, options, slip), "attributes": answers}


def _geometry(draw: st.DrawFn, structure: OntologyStructure, obj: Object, slip: _Slips) -> dict[str, Any]:
    shape = draw(st.sampled_from(SHAPES)) if slip("wrong shape") else obj.shape
    point = [0.25, 0.5]
    if shape is Shape.SKELETON:
        template = next(
            (t for t in structure.skeleton_templates.values() if t.feature_node_hash == obj.feature_node_hash), None
        )
        names = [vertex.name for vertex in template.skeleton.values()] if template else ["head"]
        if slip("skeleton points", 2):
            names = names[1:] or ["tail"]
        return {"skeleton": {name: point for name in names}}
    return {
        Shape.BOUNDING_BOX: {"bounding_box": {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4}},
        Shape.ROTATABLE_BOUNDING_BOX: {"rotatable_bounding_box": {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4, "theta": 30}},
        Shape.POLYGON: {"polygon": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]},
        Shape.POLYLINE: {"polyline": [[0.1, 0.1], [0.9, 0.9]]},
        Shape.POINT: {"point": point},
        Shape.BITMASK: {"bitmask": {"rle": "5 7", "width": WIDTH, "height": HEIGHT}},
    }[shape]


def _placement(
    draw: st.DrawFn,
    structure: OntologyStructure,
    focus: list[Object],
    frames: int,
    slip: _Slips,
    ids: dict[str, tuple[Object, set[int]]],
) -> _Placed | None:
    """An object entry without attributes; an id keeps its ontology object and takes frames it is not on yet."""
    reusing = slip.enabled & {"twice", "two objects"}  # a world that slips on ids uses one id again and again
    obj = draw(st.sampled_from(focus if focus and (reusing or draw(st.booleans())) else structure.objects))
    object_id = draw(st.sampled_from(IDS)) if draw(st.booleans()) else None
    object_id = IDS[0] if reusing and not _one_in(draw, 4) else object_id
    pool = list(range(frames))
    if object_id is not None and object_id in ids:
        bound, used = ids[object_id]
        others = [other for other in structure.objects if other is not bound]
        alike = [other for other in others if other.title == bound.title]
        obj = draw(st.sampled_from(alike or others)) if others and slip("two objects", 1) else bound
        free = [frame for frame in pool if frame not in used]
        pool = sorted(used) if slip("twice", 2) else free
        if not pool:
            return None
    label: dict[str, Any] = {}
    named = _key(draw, obj, structure.objects, slip)
    label["feature_hash" if named == obj.feature_node_hash else "name"] = named
    label.update(_geometry(draw, structure, obj, slip))
    if frames > 1 or draw(st.booleans()):
        label["frames"] = _frames(draw, frames, slip, pool)
    placed = [frame for frame in _covered(label.get("frames", 0)) if frame < frames]
    if object_id is not None:
        label["id"] = object_id
        ids.setdefault(object_id, (obj, set()))[1].update(placed)
    if _one_in(draw, 5):
        label["confidence"] = 0.5
    return _Placed(label, obj, placed)


def _classification(
    draw: st.DrawFn, structure: OntologyStructure, answers: _Answers, given: dict[str, Any], slip: _Slips
) -> dict[str, Any]:
    """A classification entry; one the world already answered gets that answer again (on any frames) unless it
    slips, as one classification has one answer per frame."""
    classification = draw(st.sampled_from(structure.classifications))
    label: dict[str, Any]
    if not classification.attributes:
        label = {"feature_hash": classification.feature_node_hash, "answer": "anything"}
    else:
        question = classification.attributes[0]
        named = _key(draw, question, [c.attributes[0] for c in structure.classifications if c.attributes], slip)
        label = {"name": named} if named == question.title else {"feature_hash": classification.feature_node_hash}
        known = given.get(classification.feature_node_hash)
        fresh = known is None or slip("classification conflict", 2)
        label["answer"] = answers.one(question, []) if fresh else known
        given.setdefault(classification.feature_node_hash, label["answer"])
    if answers.frames > 1 or draw(st.booleans()):
        one = "classification conflict" in slip.enabled and draw(st.booleans())  # apart, unless it is global
        label["frames"] = draw(st.integers(0, answers.frames - 1)) if one else _frames(draw, answers.frames, slip)
    return label


@st.composite
def worlds(draw: st.DrawFn) -> World:
    choice = draw(st.integers(0, len(SLIPS) + 4))
    enabled = frozenset() if choice < 4 else frozenset(SLIPS[choice - 4 : choice - 3] or SLIPS)
    slip = _Slips(draw, enabled)
    structure, focus = _ontology(draw, slip)
    on_video = enabled & {
        "off frames",
        "two objects",
        "classification conflict",
        "global conflict",
    }  # slips an image leaves no room for
    frames = draw(st.sampled_from([2, 3, 5] if on_video else [1, 2, 3, 5]))
    unit = DataUnit("unit-hash", "unit title", frames, WIDTH, HEIGHT)
    ids: dict[str, tuple[Object, set[int]]] = {}
    lines = [
        [
            p
            for _ in range(draw(st.integers(1 if slip.enabled else 0, 3)))
            if (p := _placement(draw, structure, focus, frames, slip, ids))
        ]
        for _ in range(draw(st.integers(1, 3)))
    ]
    answers = _Answers(draw, slip, frames, sorted(ids))
    if "global conflict" in enabled:
        weather = structure.add_classification(feature_node_hash="fglobal0", level=OntologyClassificationLevel.GLOBAL)
        question = weather.add_attribute(RadioAttribute, draw(st.sampled_from(TITLES)), feature_node_hash="fglobal1")
        for index, title in enumerate(["Sunny", "Rainy"]):
            question.add_option(title, feature_node_hash=f"fglobal{index + 2}")
    if "dangling relation" in enabled:  # a classification can relate to an object too
        leader = structure.add_classification(feature_node_hash="frelate0")
        leader.add_attribute(TextAttribute, "Leader #relation", feature_node_hash="frelate1")
    given: dict[str, Any] = {}
    records = []
    for placements in lines:
        objects = []
        for placed in placements:
            label = placed.label
            object_frames = sorted(ids[label["id"]][1]) if "id" in label else placed.frames
            if attributes := answers.of(list(placed.obj.attributes), object_frames, top_level=True):
                label["attributes"] = attributes
            objects.append(label)
        record: dict[str, Any] = {"data_hash": unit.data_hash, "objects": objects}
        if structure.classifications and ("classification conflict" in slip.enabled or draw(st.booleans())):
            record["classifications"] = [
                _classification(draw, structure, answers, given, slip) for _ in range(draw(st.integers(1, 2)))
            ]
        if "dangling relation" in enabled and not records:
            related = draw(st.sampled_from([*sorted(ids), "nobody"]))
            record.setdefault("classifications", []).append(
                {"name": "Leader #relation", "answer": {"relation_to": related}}
            )
        if "global conflict" in enabled:
            weather_now = {"feature_hash": "fglobal0", "answer": draw(st.sampled_from(["Sunny", "Rainy"]))}
            record.setdefault("classifications", []).append({**weather_now, "frames": len(records) % frames})
        records.append(record)
    return World(structure, unit, records, enabled)


# --- the validator and the SDK -------------------------------------------------------------------------------


def validate(world: World, records: list[LabelRecord]) -> tuple[list[Problem], set[int]]:
    """Every problem with the records, and the lines left valid, as index_records finds them."""
    resolver = OntologyResolver(world.structure)
    units = DataUnitIndex([world.unit])
    tracker = DataUnitTracker()
    problems: list[Problem] = []
    for number, record in enumerate(records, 1):
        _, found = check_record(number, record, units, resolver, tracker)
        problems.extend(found)
    problems.extend(tracker.dangling())
    return problems, set(range(1, len(records) + 1)) - {problem.line for problem in problems}


def blank_label_row(world: World) -> LabelRowV2:
    """A freshly initialised, empty label row of the data unit, built offline as the SDK parses one."""
    video = world.unit.number_of_frames > 1
    now = datetime.now(UTC)
    file_type = "video/mp4" if video else "image/jpeg"
    common = {
        "label_hash": "label-hash",
        "branch_name": "main",
        "created_at": now.isoformat(),
        "last_edited_at": now.isoformat(),
        "data_hash": world.unit.data_hash,
        "dataset_hash": "dataset-hash",
        "dataset_title": "dataset",
        "data_title": world.unit.title,
        "label_status": "NOT_LABELLED",
        "annotation_task_status": "QUEUED",
        "is_shadow_data": False,
        "spaces": {},
    }
    metadata = {
        **common,
        "data_type": "VIDEO" if video else "IMAGE",
        "data_link": "https://storage.invalid/unit",
        "workflow_graph_node": None,
        "number_of_frames": world.unit.number_of_frames,
        "frames_per_second": 25.0 if video else None,
        "duration": world.unit.number_of_frames / 25.0 if video else None,
        "width": WIDTH,
        "height": HEIGHT,
        "file_type": file_type,
        "images_data": None,
    }
    data_unit: dict[str, Any] = {
        "data_hash": world.unit.data_hash,
        "data_title": world.unit.title,
        "data_link": metadata["data_link"],
        "data_type": file_type,
        "data_sequence": 0,
        "width": WIDTH,
        "height": HEIGHT,
        "labels": {} if video else {"objects": [], "classifications": []},
    }
    if video:
        data_unit.update(data_fps=25.0, data_duration=metadata["duration"])
    ontology = Ontology(
        OrmOntology(
            title="generated", structure=world.structure, ontology_hash="o", created_at=now, last_edited_at=now
        ),
        api_client=None,  # type: ignore[arg-type]  # parsing needs no client
    )
    row = LabelRowV2(LabelRowMetadata.from_dict(metadata), None, ontology)  # type: ignore[arg-type]
    row.from_labels_dict(
        {
            **common,
            "data_type": "video" if video else "image",
            "data_units": {world.unit.data_hash: data_unit},
            "object_answers": {},
            "classification_answers": {},
            "object_actions": {},
        }
    )
    return row


def applied(world: World, records: list[tuple[int, LabelRecord]]) -> LabelRowV2:
    """A blank row of the data unit with the records applied by the importer's builder, in `append` mode."""
    row = blank_label_row(world)
    chunk_row = ChunkRow(
        data_hash=world.unit.data_hash,
        records=[RecordLabels(line=n, objects=r.objects, classifications=r.classifications) for n, r in records],
    )
    LabelBuilder(OntologyResolver(world.structure)).apply(row, chunk_row, Mode.APPEND)
    return row


def sdk_refusal(world: World, records: list[tuple[int, LabelRecord]]) -> Exception | None:
    """What applying the records raises, or None: the builder onto a blank row, then a write-out and a read-back
    (what the next reader of the saved row does)."""
    try:
        blank_label_row(world).from_labels_dict(applied(world, records).to_encord_dict())
    except Exception as error:  # any refusal counts: that is the point
        return error
    return None


EXAMPLES = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@EXAMPLES
@given(worlds())
def test_records_pass_strict_validation_exactly_when_the_sdk_takes_them(world: World) -> None:
    records = [LabelRecord.model_validate(record) for record in world.records]

    problems, _ = validate(world, records)
    refusal = sdk_refusal(world, list(enumerate(records, 1)))

    slips = ", ".join(sorted(world.slips)) if len(world.slips) < len(SLIPS) else "all kinds"
    event(f"slips: {slips or 'none'}; {'valid' if not problems else 'invalid'}")
    note(f"problems: {problems}\nSDK: {refusal!r}")
    assert (not problems) == (refusal is None), (
        f"the validator found {problems or 'nothing'} but applying raised {refusal!r}"
    )


@EXAMPLES
@given(worlds())
def test_the_records_left_valid_apply_cleanly(world: World) -> None:
    """What `skip-invalid` imports: a line the validator kept may not depend on one it rejected."""
    records = [LabelRecord.model_validate(record) for record in world.records]

    _, valid = validate(world, records)
    kept = [(number, record) for number, record in enumerate(records, 1) if number in valid]

    event(f"{len(kept)} of {len(records)} lines kept")
    assert sdk_refusal(world, kept) is None


# --- what the builder does where the SDK would quietly do something else --------------------------------------


def _weather(level: OntologyClassificationLevel | None = None) -> OntologyStructure:
    structure = OntologyStructure()
    structure.add_object("Car", Shape.BOUNDING_BOX, feature_node_hash="obCar000")
    question = structure.add_classification(feature_node_hash="clWeathr", level=level).add_attribute(
        RadioAttribute, "Weather", feature_node_hash="atWeathr"
    )
    question.add_option("Sunny", feature_node_hash="opSunny0")
    question.add_option("Rainy", feature_node_hash="opRainy0")
    return structure


def _applied(world: World) -> LabelRowV2:
    return applied(world, [(n, LabelRecord.model_validate(r)) for n, r in enumerate(world.records, 1)])


def test_a_repeated_classification_answer_adds_the_frames_it_did_not_cover_yet() -> None:
    """Frames 0-2 and 2-4 with one answer are frames 0-4 with it; the SDK refuses a second instance on frame 2,
    and skipping the second entry would drop frames 3 and 4."""
    sunny = [{"name": "Weather", "answer": "Sunny", "frames": {"start": s, "end": e}} for s, e in ((0, 2), (2, 4))]
    world = World(
        _weather(),
        DataUnit("unit-hash", "unit", 5, WIDTH, HEIGHT),
        [{"data_hash": "unit-hash", "classifications": sunny}],
        frozenset(),
    )

    row = _applied(world)

    frames = sorted(
        frame for c in row.get_classification_instances() for r in c.range_list for frame in range(r.start, r.end + 1)
    )
    assert frames == [0, 1, 2, 3, 4]


def test_a_global_classification_is_added_once_whatever_frames_its_entries_give() -> None:
    entries = [{"name": "Weather", "answer": "Sunny", "frames": frame} for frame in (0, 3)]
    world = World(
        _weather(OntologyClassificationLevel.GLOBAL),
        DataUnit("unit-hash", "unit", 5, WIDTH, HEIGHT),
        [{"data_hash": "unit-hash", "classifications": entries}],
        frozenset(),
    )

    assert len(_applied(world).get_classification_instances()) == 1


def test_the_builder_refuses_frames_the_data_unit_does_not_have() -> None:
    """The SDK checks frames only for instances already on a row, and the builder adds them whole."""
    car = {"name": "Car", "frames": 5, "bounding_box": {"x": 0.1, "y": 0.1, "w": 0.1, "h": 0.1}}
    world = World(
        _weather(),
        DataUnit("unit-hash", "unit", 5, WIDTH, HEIGHT),
        [{"data_hash": "unit-hash", "objects": [car]}],
        frozenset(),
    )

    with pytest.raises(UnresolvedLabel) as refused:
        _applied(world)
    assert [issue.code for issue in refused.value.problems] == [ErrorCode.FRAME_OUT_OF_RANGE]
