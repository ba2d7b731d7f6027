"""Property-based: random valid records always validate; random corruptions of them never crash and are
always reported. The strategies describe the format from its documentation, independently of the
validator's models, so a model that drifts from the docs fails here.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from label_importer.checks.ontology_resolver import OntologyResolver
from label_importer.checks.validation import FileIndex, index_records
from label_importer.model.data_units import DataUnit, DataUnitIndex
from label_importer.model.jobs import JobStatus
from label_importer.model.limits import Limits
from label_importer.model.source_items import Record
from local.fake_encord import build_ontology
from local.pipeline import Pipeline
from local.sample_labels import jsonl

RESOLVER = OntologyResolver(build_ontology())
VIDEO_FRAMES = 10
UNITS = DataUnitIndex([DataUnit("img", "cherry.jpg", 1, 640, 480), DataUnit("vid", "orchard.mp4", VIDEO_FRAMES, 4, 3)])

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
point = st.tuples(unit, unit).map(list)
box = st.fixed_dictionaries({"x": unit, "y": unit, "w": unit, "h": unit})


def frames_within(last: int) -> st.SearchStrategy[Any]:
    frame = st.integers(0, last)
    span = st.tuples(frame, frame).map(lambda ab: {"start": min(ab), "end": max(ab)})
    return st.one_of(frame, span, st.lists(st.one_of(frame, span), min_size=1, max_size=3))


def geometry(shape: str) -> st.SearchStrategy[dict[str, Any]]:
    return {
        "Cherry": box.map(lambda b: {"bounding_box": b}),
        "Other type of fruit": st.builds(
            lambda b, theta: {"rotatable_bounding_box": {**b, "theta": theta}},
            box,
            st.floats(0, 359.9, allow_nan=False),
        ),
        "Persimmon": st.lists(point, min_size=3, max_size=8).map(lambda p: {"polygon": p}),
        "Branch": st.lists(point, min_size=2, max_size=8).map(lambda p: {"polyline": p}),
        "Pedicel": point.map(lambda p: {"point": p}),
        "Strawberry": st.fixed_dictionaries({"calyx": point, "tip": point, "left": point, "right": point}).map(
            lambda s: {"skeleton": s}
        ),
    }[shape]


ATTRIBUTES = {
    "Cherry": st.fixed_dictionaries(
        {},
        optional={
            "Description": st.text(max_size=20),
            "Ripeness": st.sampled_from(["Ripe", "Unripe"]),
            "Defects": st.lists(st.sampled_from(["Bruise", "Crack"]), unique=True),
        },
    )
}


@st.composite
def valid_object(draw: st.DrawFn, last_frame: int) -> dict[str, Any]:
    name = draw(st.sampled_from(["Cherry", "Other type of fruit", "Persimmon", "Branch", "Pedicel", "Strawberry"]))
    label: dict[str, Any] = {"name": name, **draw(geometry(name))}
    if draw(st.booleans()):
        label["frames"] = draw(frames_within(last_frame))
    if draw(st.booleans()):
        label["confidence"] = draw(unit)
    if name in ATTRIBUTES:
        label["attributes"] = draw(ATTRIBUTES[name])
    return label


@st.composite
def valid_record(draw: st.DrawFn) -> dict[str, Any]:
    title, last_frame = draw(st.sampled_from([("cherry.jpg", 0), ("orchard.mp4", VIDEO_FRAMES - 1)]))
    record: dict[str, Any] = {"data_title": title, "objects": draw(st.lists(valid_object(last_frame), max_size=4))}
    if draw(st.booleans()):
        record["classifications"] = [
            {"name": "Many types of fruit?", "answer": draw(st.lists(st.sampled_from(["Apple", "Kiwi"]), unique=True))}
        ]
    return record


def problems_for(lines: list[bytes]) -> list[Any]:
    index = index_records(
        map(Record._make, enumerate(lines, 1)), UNITS, RESOLVER, FileIndex(max_problems=100), Limits()
    )
    return index.problems


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(valid_record())
def test_valid_records_always_pass(record: dict[str, Any]) -> None:
    assert problems_for([json.dumps(record).encode()]) == []


CORRUPTIONS = st.sampled_from(
    [
        "unknown field",
        "unknown object",
        "coordinate out of range",
        "NaN",
        "drop data unit",
        "truncate",
        "invalid byte",
        "wrong type",
        "frame past end",
    ]
)


def corrupt(record: dict[str, Any], how: str, data: st.DataObject) -> bytes:
    record = json.loads(json.dumps(record))
    objects = record["objects"]
    if how == "unknown field":
        record[data.draw(st.sampled_from(["label", "object", "Objects", "data unit"]))] = 1
    elif how == "unknown object":
        objects.append({"name": data.draw(st.sampled_from(["Banana", "cherry", "Whales"])), "point": [0.5, 0.5]})
    elif how == "coordinate out of range":
        objects.append({"name": "Pedicel", "point": [data.draw(st.floats(1.0001, 1e9)), 0.5]})
    elif how == "NaN":
        return json.dumps({**record, "objects": [*objects, {"name": "Pedicel", "point": [math.nan, 0.5]}]}).encode()
    elif how == "drop data unit":
        del record["data_title"]
    elif how == "truncate":
        text = json.dumps(record).encode()
        return text[: data.draw(st.integers(1, len(text) - 1))]
    elif how == "invalid byte":
        text = json.dumps(record).encode()
        at = data.draw(st.integers(0, len(text)))
        return text[:at] + b"\xff" + text[at:]
    elif how == "wrong type":
        record["objects"] = data.draw(st.sampled_from(["Cherry", 3, {"name": "Cherry"}, None]))
    elif how == "frame past end":
        objects.append({"name": "Pedicel", "point": [0.5, 0.5], "frames": VIDEO_FRAMES + data.draw(st.integers(0, 99))})
    return json.dumps(record).encode()


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(valid_record(), CORRUPTIONS, st.data())
def test_corrupted_records_are_always_reported_never_crash(record: dict[str, Any], how: str, data: st.DataObject):
    found = problems_for([json.dumps(record).encode(), corrupt(record, how, data)])
    assert found, f"{how} went unnoticed"
    assert {problem.line for problem in found} == {2}
    assert all(problem.code and problem.message for problem in found)


@pytest.mark.integration
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(valid_record(), min_size=1, max_size=2, unique_by=lambda record: record["data_title"]))
def test_any_valid_file_imports_every_label(pipeline: Pipeline, records: list[dict[str, Any]]) -> None:
    units = {title: _data_unit(pipeline, title) for title in ("cherry.jpg", "orchard.mp4")}

    job = pipeline.run("incoming/property.jsonl", jsonl(records, header={"mode": "replace"}))

    assert (job.status, job.rows_failed) == (JobStatus.COMPLETED, 0)
    rows = pipeline.stack.read_back([units[record["data_title"]] for record in records])
    for record in records:
        row = rows[units[record["data_title"]]]
        assert len(row.get_object_instances()) == len(record["objects"])
        assert len(row.get_classification_instances()) == len(record.get("classifications", []))


def _data_unit(pipeline: Pipeline, title: str) -> str:
    """The data unit titled `title`, created the first time an example asks for it."""
    listed = pipeline.stack.encord_project().list_label_rows_v2(data_title_eq=title)
    if listed:
        return listed[0].data_hash
    if title.endswith(".mp4"):
        return pipeline.stack.encord.add_video(title, number_of_frames=VIDEO_FRAMES, width=4, height=3)
    return pipeline.stack.encord.add_image(title)
