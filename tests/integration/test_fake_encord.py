"""The fake Encord server, driven by the unmodified encord SDK.

Everything the importer's tests trust about Encord rests on this fake, so it is checked the way the importer
uses it: the SDK writes labels, a fresh SDK client reads them back, and the values are compared with literals.
Faults and strictness are checked too, because a fake that accepts anything proves nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import requests
from encord import EncordUserClient, Project
from encord.common.bitmask_operations import serialise_bitmask
from encord.exceptions import (
    EncordException,
    InvalidArgumentsError,
    RateLimitExceededError,
    RequestException,
    ResourceExistsError,
)
from encord.http.constants import RequestsSettings
from encord.objects import (
    ChecklistAttribute,
    Classification,
    LabelRowV2,
    Object,
    ObjectInstance,
    Option,
    RadioAttribute,
    Shape,
    TextAttribute,
)
from encord.objects.bitmask import BitmaskCoordinates
from encord.objects.coordinates import (
    BoundingBoxCoordinates,
    PointCoordinate,
    PolygonCoordinates,
    PolylineCoordinates,
    RotatableBoundingBoxCoordinates,
    SkeletonCoordinate,
)
from encord.objects.frames import Range

from local.fake_encord import CLIENT_TIMEOUT_SECONDS, FakeEncordServer, encord_client
from local.keys import generate_ssh_private_key

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ssh_key() -> str:
    return generate_ssh_private_key()


@pytest.fixture
def server() -> Iterator[FakeEncordServer]:
    with FakeEncordServer() as fake:
        yield fake


def open_project(server: FakeEncordServer, ssh_key: str) -> Project:
    """A fresh client and project, as a new reader (another Lambda, the web app) would have."""
    return encord_client(server.url, ssh_key).get_project(server.project_hash)


@pytest.fixture
def project(server: FakeEncordServer, ssh_key: str) -> Project:
    return open_project(server, ssh_key)


def obj(project: Project, title: str) -> Object:
    return project.ontology_structure.get_child_by_title(title, type_=Object)


def classification(project: Project, title: str) -> Classification:
    return project.ontology_structure.get_child_by_title(title, type_=Classification)


def option(parent: Any, title: str) -> Option:
    return parent.get_child_by_title(title, type_=Option)


def initialise(project: Project, rows: list[LabelRowV2]) -> None:
    with project.create_bundle(bundle_size=100) as bundle:
        for row in rows:
            row.initialise_labels(bundle=bundle)


def read_back(server: FakeEncordServer, ssh_key: str, data_hash: str) -> LabelRowV2:
    """The data unit's labels as a fresh reader sees them."""
    [row] = open_project(server, ssh_key).list_label_rows_v2(data_hashes=[data_hash])
    row.initialise_labels()
    return row


def stored_row(server: FakeEncordServer, data_hash: str) -> dict[str, Any]:
    stored = server.label_row(data_hash)
    assert stored is not None, f"no label row stored for {data_hash}"
    return stored


def post_v1(server: FakeEncordServer, query_type: str, method: str, uid: Any, payload: Any) -> dict[str, Any]:
    """A v1 RPC call by hand, for payloads the SDK would never build."""
    body = {"query_type": query_type, "query_method": method, "values": {"uid": uid, "payload": payload}}
    response = requests.post(f"{server.url}/public", data=orjson.dumps(body), timeout=CLIENT_TIMEOUT_SECONDS)
    return {"http_status": response.status_code, **response.json()}


def test_project_and_ontology_resolve_by_title(server: FakeEncordServer, project: Project) -> None:
    ontology = project.ontology_structure

    shapes = {(item.title, item.feature_node_hash): item.shape for item in ontology.objects if item.title == "Stone"}
    assert shapes == {("Stone", "obStoneA"): Shape.POINT, ("Stone", "obStoneB"): Shape.POINT}
    shapes = {item.title: item.shape for item in ontology.objects if item.title != "Stone"}
    assert shapes == {
        "Cherry": Shape.BOUNDING_BOX,
        "Other type of fruit": Shape.ROTATABLE_BOUNDING_BOX,
        "Persimmon": Shape.POLYGON,
        "Branch": Shape.POLYLINE,
        "Pedicel": Shape.POINT,
        "Blueberry": Shape.BITMASK,
        "Strawberry": Shape.SKELETON,
        "Whale": Shape.BOUNDING_BOX,
        "Person": Shape.BOUNDING_BOX,
    }
    cherry = obj(project, "Cherry")
    assert [(type(a), a.title) for a in cherry.attributes] == [
        (TextAttribute, "Description"),
        (RadioAttribute, "Ripeness"),
        (ChecklistAttribute, "Defects"),
    ]
    assert [o.title for o in cherry.get_child_by_title("Defects", type_=ChecklistAttribute).options] == [
        "Bruise",
        "Crack",
    ]
    whale = obj(project, "Whale")
    pink = option(whale, "Pink")
    assert pink.feature_node_hash in {
        o.feature_node_hash for o in whale.get_child_by_title("Any Other Colours?", type_=RadioAttribute).options
    }
    assert whale.get_child_by_title("Description #relation", type_=TextAttribute) is not None
    position = obj(project, "Person").get_child_by_title("Position", type_=RadioAttribute)
    assert position.dynamic and [o.title for o in position.options] == ["Standing", "Walking"]
    assert [c.attributes[0].title for c in ontology.classifications] == [
        "Blueberry or cherry?",
        "Many types of fruit?",
        "Caption",
    ]
    assert [o.title for o in classification(project, "Many types of fruit?").attributes[0].options] == [
        "Apple",
        "Kiwi",
        "Persimmon",
    ]

    template = ontology.skeleton_templates["Strawberry"]
    assert template.feature_node_hash == obj(project, "Strawberry").feature_node_hash
    skeleton = template.create_instance(
        [SkeletonCoordinate(x=0.1 * i, y=0.2, name=name) for i, name in enumerate(["calyx", "tip", "left", "right"])]
    )
    assert [v.feature_hash for v in skeleton.values] == [v.feature_hash for v in template.skeleton.values()]

    assert ontology.to_dict() == server.ontology
    assert (server.request_counts["get_project"], server.request_counts["get_ontology"]) == (1, 1)


def test_listing_honours_the_filters(server: FakeEncordServer, project: Project) -> None:
    one, two, twenty = (server.add_image(title) for title in ("img_1.jpg", "img_2.jpg", "img_22.jpg"))
    other = server.add_image("IMG_3.png", width=320, height=200)
    video = server.add_video("clip.mp4", number_of_frames=5, fps=10.0)

    rows = project.list_label_rows_v2()
    assert [row.data_hash for row in rows] == [one, two, twenty, other, video]
    assert {row.label_hash for row in rows} == {None}
    assert [(row.data_type.value, row.width, row.height, row.number_of_frames) for row in rows[-2:]] == [
        ("image", 320, 200, 1),
        ("video", 640, 480, 5),
    ]
    assert rows[-1].fps == 10.0

    def titles(**filters: Any) -> list[str]:
        return [row.data_title for row in project.list_label_rows_v2(**filters)]

    assert titles(data_hashes=[twenty, one]) == ["img_1.jpg", "img_22.jpg"]
    assert titles(data_title_eq="img_2.jpg") == ["img_2.jpg"]
    assert titles(data_title_eq="img_") == []
    assert titles(data_title_like="img_%") == ["img_1.jpg", "img_2.jpg", "img_22.jpg"]  # case-sensitive
    assert titles(data_title_like="img__.jpg") == ["img_1.jpg", "img_2.jpg"]
    assert titles(data_title_like=r"%\_2%") == ["img_2.jpg", "img_22.jpg"]
    assert titles(data_title_like="%.mp4", data_hashes=[one, video]) == ["clip.mp4"]

    [row] = project.list_label_rows_v2(data_hashes=[two])
    row.initialise_labels()
    [listed] = project.list_label_rows_v2(data_hashes=[two])
    assert listed.label_hash == row.label_hash is not None
    assert titles(label_hashes=[row.label_hash]) == ["img_2.jpg"]
    # Rows never labelled were never edited.
    assert titles(edited_after="2000-01-01T00:00:00") == ["img_2.jpg"]


def label_image(project: Project, row: LabelRowV2, i: int) -> None:
    """A bounding box, a polygon, a point and both choice classifications, with values that depend on `i`."""
    cherry = obj(project, "Cherry").create_instance()
    cherry.set_for_frames(BoundingBoxCoordinates(height=0.1, width=0.2, top_left_x=i / 1000, top_left_y=0.5))
    row.add_object_instance(cherry)
    persimmon = obj(project, "Persimmon").create_instance()
    persimmon.set_for_frames(
        PolygonCoordinates(
            values=[PointCoordinate(0.1, 0.1), PointCoordinate(0.4, i / 1000), PointCoordinate(0.2, 0.6)]
        )
    )
    row.add_object_instance(persimmon)
    pedicel = obj(project, "Pedicel").create_instance()
    pedicel.set_for_frames(PointCoordinate(x=0.5, y=i / 1000))
    row.add_object_instance(pedicel)

    which = classification(project, "Blueberry or cherry?")
    instance = which.create_instance()
    instance.set_answer(option(which, "Cherry" if i % 2 else "Blueberry"))
    instance.set_for_frames(0)
    row.add_classification_instance(instance)
    many = classification(project, "Many types of fruit?")
    instance = many.create_instance()
    instance.set_answer([option(many, "Apple"), option(many, "Kiwi" if i % 3 else "Persimmon")])
    instance.set_for_frames(0)
    row.add_classification_instance(instance)


def read_image_labels(row: LabelRowV2) -> dict[str, Any]:
    by_title = {instance.ontology_item.title: instance for instance in row.get_object_instances()}
    answers = {}
    for instance in row.get_classification_instances():
        answer = instance.get_answer()
        answers[instance.ontology_item.title] = (
            sorted(o.title for o in answer) if isinstance(answer, list) else answer.title
        )
    polygon = by_title["Persimmon"].get_annotation(0).coordinates
    return {
        "objects": sorted(by_title),
        "box": by_title["Cherry"].get_annotation(0).coordinates,
        "polygon": [(p.x, p.y) for p in polygon.values],
        "point": by_title["Pedicel"].get_annotation(0).coordinates,
        "answers": answers,
    }


def test_bundled_flow_on_250_images_costs_three_requests_per_step(server: FakeEncordServer, project: Project) -> None:
    hashes = server.add_images(250)
    server.reset_counts()

    rows = project.list_label_rows_v2()
    initialise(project, rows)
    for i, row in enumerate(rows):
        label_image(project, row, i)
    with project.create_bundle(bundle_size=100) as bundle:
        for row in rows:
            row.save(bundle=bundle)

    assert dict(server.request_counts) == {"list_label_rows": 1, "create_label_rows": 3, "save_label_rows": 3}
    assert server.answered_counts == server.request_counts  # no client gave up on any of them
    assert server.write_requests() == 6

    reader = open_project(server, generate_ssh_private_key())
    server.reset_counts()
    fresh = reader.list_label_rows_v2()
    initialise(reader, fresh)
    assert dict(server.request_counts) == {"list_label_rows": 1, "get_label_rows": 3}
    assert [row.data_hash for row in fresh] == hashes
    for i, row in enumerate(fresh):
        assert row.data_title == f"image_{i:05d}.jpg"
        assert read_image_labels(row) == {
            "objects": ["Cherry", "Pedicel", "Persimmon"],
            "box": BoundingBoxCoordinates(height=0.1, width=0.2, top_left_x=i / 1000, top_left_y=0.5),
            "polygon": [(0.1, 0.1), (0.4, i / 1000), (0.2, 0.6)],
            "point": PointCoordinate(x=0.5, y=i / 1000),
            "answers": {
                "Blueberry or cherry?": "Cherry" if i % 2 else "Blueberry",
                "Many types of fruit?": sorted(["Apple", "Kiwi" if i % 3 else "Persimmon"]),
            },
        }
    stored = stored_row(server, hashes[7])
    assert stored["label_status"] == "LABEL_IN_PROGRESS"
    [box] = [o for o in stored["data_units"][hashes[7]]["labels"]["objects"] if o["shape"] == "bounding_box"]
    assert box["boundingBox"] == {"h": 0.1, "w": 0.2, "x": 0.007, "y": 0.5}


def test_every_shape_and_nested_answer_round_trips_on_an_image(
    server: FakeEncordServer, project: Project, ssh_key: str
) -> None:
    image = server.add_image("all.jpg", width=4, height=3)
    [row] = project.list_label_rows_v2(data_hashes=[image])
    row.initialise_labels()

    whale = obj(project, "Whale")
    instance = whale.create_instance()
    instance.set_for_frames(BoundingBoxCoordinates(height=0.5, width=0.5, top_left_x=0.25, top_left_y=0.25))
    instance.set_answer("big", attribute=whale.get_child_by_title("Description", type_=TextAttribute))
    instance.set_answer(option(whale, "Blue"), attribute=whale.get_child_by_title("Colour", type_=RadioAttribute))
    nested = whale.get_child_by_title("Any Other Colours?", type_=RadioAttribute)
    instance.set_answer(option(whale, "Pink"), attribute=nested)
    row.add_object_instance(instance)
    shapes: list[tuple[str, Any]] = [
        ("Other type of fruit", RotatableBoundingBoxCoordinates(0.2, 0.3, 0.1, 0.1, theta=30.0)),
        ("Branch", PolylineCoordinates(values=[PointCoordinate(0.0, 0.0), PointCoordinate(1.0, 1.0)])),
        (
            "Blueberry",
            BitmaskCoordinates(
                BitmaskCoordinates.EncodedBitmask(
                    top=0, left=0, height=3, width=4, rle_string=serialise_bitmask(bytes([0, 1, 1, 0] * 3))
                )
            ),
        ),
        (
            "Strawberry",
            project.ontology_structure.skeleton_templates["Strawberry"].create_instance(
                [SkeletonCoordinate(x=0.1, y=0.2, name=name) for name in ("calyx", "tip", "left", "right")]
            ),
        ),
    ]
    for title, coordinates in shapes:
        shape_instance = obj(project, title).create_instance()
        shape_instance.set_for_frames(coordinates)
        row.add_object_instance(shape_instance)
    caption = classification(project, "Caption").create_instance()
    caption.set_answer("two fruit and a whale")
    caption.set_for_frames(0)
    row.add_classification_instance(caption)
    row.save()

    fresh = read_back(server, ssh_key, image)
    read: dict[str, ObjectInstance] = {i.ontology_item.title: i for i in fresh.get_object_instances()}
    assert sorted(read) == ["Blueberry", "Branch", "Other type of fruit", "Strawberry", "Whale"]
    assert read["Whale"].get_answer(nested).title == "Pink"
    assert read["Whale"].get_answer(whale.get_child_by_title("Description", type_=TextAttribute)) == "big"
    for title, coordinates in shapes:
        back = read[title].get_annotation(0).coordinates
        if title == "Blueberry":
            assert back.to_dict() == coordinates.to_dict()
        elif title == "Strawberry":
            assert [(v.name, v.x, v.y) for v in back.values] == [(v.name, v.x, v.y) for v in coordinates.values]
        else:
            assert back == coordinates
    assert [c.get_answer() for c in fresh.get_classification_instances()] == ["two fruit and a whale"]


def test_a_video_keeps_frames_ranges_and_dynamic_answers(
    server: FakeEncordServer, project: Project, ssh_key: str
) -> None:
    video = server.add_video("walk.mp4", number_of_frames=5, fps=25.0)
    [row] = project.list_label_rows_v2(data_hashes=[video])
    row.initialise_labels()
    person = obj(project, "Person")
    position = person.get_child_by_title("Position", type_=RadioAttribute)
    near = BoundingBoxCoordinates(height=0.5, width=0.2, top_left_x=0.1, top_left_y=0.2)
    far = BoundingBoxCoordinates(height=0.25, width=0.1, top_left_x=0.6, top_left_y=0.3)
    instance = person.create_instance()
    instance.set_for_frames(near, frames=[0, 1, 2])
    instance.set_for_frames(far, frames=Range(3, 4))
    instance.set_answer(option(person, "Walking"), attribute=position, frames=Range(1, 2))
    row.add_object_instance(instance)
    which = classification(project, "Blueberry or cherry?")
    whole_clip = which.create_instance()
    whole_clip.set_answer(option(which, "Blueberry"))
    whole_clip.set_for_frames(Range(0, 4))
    row.add_classification_instance(whole_clip)
    row.save()

    fresh = read_back(server, ssh_key, video)
    [back] = fresh.get_object_instances()
    assert [back.get_annotation(frame).coordinates for frame in range(5)] == [near, near, near, far, far]
    [answer] = back.get_answer(position)
    assert (answer.answer.title, answer.ranges) == ("Walking", [Range(1, 2)])
    [clip] = fresh.get_classification_instances()
    assert clip.get_answer().title == "Blueberry"
    assert sorted(annotation.frame for annotation in clip.get_annotations()) == [0, 1, 2, 3, 4]
    stored = stored_row(server, video)
    assert sorted(stored["data_units"][video]["labels"]) == ["0", "1", "2", "3", "4"]
    assert [a["range"] for a in stored["classification_answers"].values()] == [[[0, 4]]]


def test_an_image_group_stores_one_data_unit_per_image_with_its_own_size(
    server: FakeEncordServer, project: Project, ssh_key: str
) -> None:
    group = server.add_image_group("inspection", [(640, 480), (320, 240), (640, 480)])
    [listed] = project.list_label_rows_v2(data_hashes=[group], include_images_data=True)
    assert (listed.data_type.value, listed.number_of_frames, listed.width, listed.height) == (
        "img_group",
        3,
        None,
        None,
    )
    assert [(view.width, view.height) for view in listed.get_frames_metadata()] == [(640, 480), (320, 240), (640, 480)]
    listed.initialise_labels()
    rle = serialise_bitmask(bytes(([0] * 30 + [1] * 30 + [0] * 260) * 240))
    mask = BitmaskCoordinates(BitmaskCoordinates.EncodedBitmask(top=0, left=0, height=240, width=320, rle_string=rle))
    blueberry = obj(project, "Blueberry").create_instance()
    blueberry.set_for_frames(mask, frames=1)
    listed.add_object_instance(blueberry)
    box = BoundingBoxCoordinates(height=0.5, width=0.2, top_left_x=0.1, top_left_y=0.2)
    cherry = obj(project, "Cherry").create_instance()
    cherry.set_for_frames(box, frames=[0, 2])
    listed.add_object_instance(cherry)
    listed.save()

    fresh = read_back(server, ssh_key, group)
    by_title = {i.ontology_item.title: i for i in fresh.get_object_instances()}
    assert [a.frame for a in by_title["Cherry"].get_annotations()] == [0, 2]
    [mask_back] = by_title["Blueberry"].get_annotations()
    assert (mask_back.frame, mask_back.coordinates.to_dict()) == (1, mask.to_dict())
    stored = stored_row(server, group)
    sequences = sorted(unit["data_sequence"] for unit in stored["data_units"].values())
    assert sequences == ["0", "1", "2"]
    assert all(len(unit["labels"]["objects"]) == 1 for unit in stored["data_units"].values())


def test_an_image_group_refuses_a_bitmask_sized_for_another_image(server: FakeEncordServer, project: Project) -> None:
    group = server.add_image_group("inspection", [(640, 480), (320, 240)])
    [row] = project.list_label_rows_v2(data_hashes=[group])
    row.initialise_labels()
    stored = stored_row(server, group)
    first, second = sorted(stored["data_units"].values(), key=lambda unit: unit["data_sequence"])
    second["labels"]["objects"].append(
        {
            "objectHash": "m1",
            "featureHash": "obBluebe",
            "shape": "bitmask",
            "bitmask": {"rleString": "", "top": 0, "left": 0, "width": 640, "height": 480},
        }
    )
    stored["object_answers"]["m1"] = {"objectHash": "m1", "classifications": []}
    reply = post_v1(server, "labelrow", "POST", [row.label_hash], {"labels": [stored]})
    assert reply["http_status"] == 400
    assert "the image is 320x240" in reply["message"]
    assert first["data_hash"] != second["data_hash"]


def test_an_image_sequence_is_a_video_with_one_frame_per_image(
    server: FakeEncordServer, project: Project, ssh_key: str
) -> None:
    sequence = server.add_image_sequence("drone-pass", number_of_images=4)
    [row] = project.list_label_rows_v2(data_hashes=[sequence])
    assert (row.data_type.value, row.number_of_frames) == ("video", 4)
    row.initialise_labels()
    box = BoundingBoxCoordinates(height=0.5, width=0.2, top_left_x=0.1, top_left_y=0.2)
    cherry = obj(project, "Cherry").create_instance()
    cherry.set_for_frames(box, frames=Range(1, 3))
    row.add_object_instance(cherry)
    row.save()

    fresh = read_back(server, ssh_key, sequence)
    [back] = fresh.get_object_instances()
    assert [(a.frame, a.coordinates) for a in back.get_annotations()] == [(1, box), (2, box), (3, box)]


def test_a_dicom_series_keys_labels_by_slice_without_a_data_link(
    server: FakeEncordServer, project: Project, ssh_key: str
) -> None:
    series = server.add_dicom_series("CT chest", number_of_slices=6, width=512, height=512)
    [row] = project.list_label_rows_v2(data_hashes=[series])
    assert (row.data_type.value, row.number_of_frames, row.width, row.data_link) == ("dicom", 6, 512, None)
    row.initialise_labels()
    outline = PolygonCoordinates([PointCoordinate(0.1, 0.1), PointCoordinate(0.5, 0.1), PointCoordinate(0.3, 0.4)])
    persimmon = obj(project, "Persimmon").create_instance()
    persimmon.set_for_frames(outline, frames=[2, 5])
    row.add_object_instance(persimmon)
    row.save()

    fresh = read_back(server, ssh_key, series)
    [back] = fresh.get_object_instances()
    assert [(a.frame, a.coordinates.to_dict()) for a in back.get_annotations()] == [
        (2, outline.to_dict()),
        (5, outline.to_dict()),
    ]
    stored = stored_row(server, series)
    assert "data_link" not in stored["data_units"][series]
    assert sorted(stored["data_units"][series]["labels"]) == ["2", "5"]


def _without_classification_range(row: dict[str, Any]) -> None:
    for answer in row["classification_answers"].values():
        del answer["range"]


def _without_object_actions(row: dict[str, Any]) -> None:
    del row["object_actions"]


def _unknown_object_feature(row: dict[str, Any]) -> None:
    next(iter(row["data_units"].values()))["labels"]["objects"][0]["featureHash"] = "nope0000"


def _orphan_frame_object(row: dict[str, Any]) -> None:
    row["object_answers"].clear()


def _box_without_geometry(row: dict[str, Any]) -> None:
    del next(iter(row["data_units"].values()))["labels"]["objects"][0]["boundingBox"]


def _wrong_label_hash(row: dict[str, Any]) -> None:
    row["label_hash"] = "0" * 36


def _unknown_option(row: dict[str, Any]) -> None:
    [answer, *_] = row["classification_answers"].values()
    answer["classifications"][0]["answers"][0]["featureHash"] = "x"


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (_without_classification_range, "range"),
        (_without_object_actions, "object_actions"),
        (_unknown_object_feature, "nope0000"),
        (_orphan_frame_object, "object_answers"),
        (_box_without_geometry, "boundingBox"),
        (_wrong_label_hash, "label_hash"),
        (_unknown_option, "not an option"),
    ],
)
def test_an_invalid_save_is_refused_and_stores_nothing(
    server: FakeEncordServer, project: Project, tamper: Callable[[dict[str, Any]], None], named: str
) -> None:
    first, second = server.add_image("first.jpg"), server.add_image("second.jpg")
    rows = project.list_label_rows_v2()
    initialise(project, rows)
    for i, row in enumerate(rows):
        label_image(project, row, i)
    before = [server.label_row(first), server.label_row(second)]
    valid, invalid = (row.to_encord_dict() for row in rows)
    tamper(invalid)

    answer = post_v1(
        server,
        "labelrow",
        "POST",
        [rows[0].label_hash, rows[1].label_hash],
        {"multi_request": True, "labels": [valid, invalid]},
    )

    assert answer["http_status"] == answer["status"] == 400
    assert answer["response"] == ["INVALID_ARGUMENTS_ERROR"]
    assert named in answer["payload"] and "second.jpg" in answer["payload"]
    # All or nothing: not even the valid row of the bundle was stored.
    assert [server.label_row(first), server.label_row(second)] == before


def test_the_sdk_surfaces_a_refused_save_as_invalid_arguments(
    server: FakeEncordServer, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = server.add_image("tampered.jpg")
    [row] = project.list_label_rows_v2()
    row.initialise_labels()
    label_image(project, row, 1)
    tampered = row.to_encord_dict()
    _without_classification_range(tampered)
    monkeypatch.setattr(row, "to_encord_dict", lambda **_: tampered)

    with pytest.raises(InvalidArgumentsError, match="range"):
        row.save()
    stored = stored_row(server, image)
    assert stored["classification_answers"] == {} and stored["object_answers"] == {}


def test_saving_the_same_row_twice_is_harmless(server: FakeEncordServer, project: Project, ssh_key: str) -> None:
    image = server.add_image("twice.jpg")
    [row] = project.list_label_rows_v2()
    row.initialise_labels()
    label_image(project, row, 5)
    row.save()
    first = stored_row(server, image)
    row.save()

    second = stored_row(server, image)
    assert {k: v for k, v in first.items() if k != "last_edited_at"} == {
        k: v for k, v in second.items() if k != "last_edited_at"
    }
    [fresh] = open_project(server, ssh_key).list_label_rows_v2()
    fresh.initialise_labels()
    assert len(fresh.get_object_instances()) == 3 and len(fresh.get_classification_instances()) == 2


def test_a_rate_limit_surfaces_with_its_retry_after(server: FakeEncordServer, project: Project) -> None:
    server.add_images(3)
    server.fail_next("list_label_rows", status=429, retry_after=1)

    with pytest.raises(RateLimitExceededError) as raised:
        project.list_label_rows_v2()

    assert raised.value.retry_after == 1
    assert len(project.list_label_rows_v2()) == 3  # only the next request failed
    assert server.request_counts["list_label_rows"] == 2

    server.fail_next("get_project", status=429, retry_after=2)
    with pytest.raises(RateLimitExceededError) as raised:
        open_project(server, generate_ssh_private_key())
    assert raised.value.retry_after == 2


def test_a_server_error_on_save_changes_nothing(server: FakeEncordServer, project: Project) -> None:
    hashes = server.add_images(4)
    rows = project.list_label_rows_v2()
    initialise(project, rows)
    for i, row in enumerate(rows):
        label_image(project, row, i)
    before = [server.label_row(h) for h in hashes]
    server.fail_next("save_label_rows", status=503)

    with pytest.raises(EncordException), project.create_bundle() as bundle:
        for row in rows:
            row.save(bundle=bundle)

    assert server.request_counts["save_label_rows"] == 1
    assert [server.label_row(h) for h in hashes] == before
    with project.create_bundle() as bundle:
        for row in rows:
            row.save(bundle=bundle)
    assert [len(stored_row(server, h)["object_answers"]) for h in hashes] == [3, 3, 3, 3]


def test_a_dropped_connection_is_a_connection_error_and_changes_nothing(
    server: FakeEncordServer, project: Project
) -> None:
    image = server.add_image("dropped.jpg")
    [row] = project.list_label_rows_v2()
    server.drop_next("create_label_rows")

    with pytest.raises(RequestException) as raised:
        row.initialise_labels()

    assert isinstance(raised.value.__cause__, requests.ConnectionError)
    assert server.label_row(image) is None
    assert project.list_label_rows_v2()[0].label_hash is None
    row.initialise_labels()  # the next attempt goes through
    assert server.label_row(image) is not None


def test_an_answer_lost_after_commit_leaves_the_change_made(server: FakeEncordServer, project: Project) -> None:
    image = server.add_image("lost.jpg")
    [row] = project.list_label_rows_v2()
    server.drop_next("create_label_rows", after_commit=True)

    with pytest.raises(RequestException):
        row.initialise_labels()

    assert server.label_row(image) is not None
    with pytest.raises(ResourceExistsError):
        row.initialise_labels()  # the client still thinks there is no label row


def test_creating_a_label_row_twice_is_refused(server: FakeEncordServer, project: Project, ssh_key: str) -> None:
    image = server.add_image("race.jpg")
    [mine] = project.list_label_rows_v2()
    [theirs] = open_project(server, ssh_key).list_label_rows_v2()  # both see an unlabelled row
    mine.initialise_labels()

    with pytest.raises(ResourceExistsError):
        theirs.initialise_labels()

    [listed] = project.list_label_rows_v2()
    stored = stored_row(server, image)
    assert listed.label_hash == mine.label_hash == stored["label_hash"]
    assert server.request_counts["create_label_rows"] == 2


def test_latency_is_added_to_every_request(server: FakeEncordServer, project: Project) -> None:
    server.latency = 0.05
    started = time.perf_counter()
    for _ in range(4):
        project.list_label_rows_v2()
    assert time.perf_counter() - started >= 0.2


def test_unknown_requests_are_refused_and_counted(server: FakeEncordServer) -> None:
    answer = post_v1(server, "dataset", "GET", None, None)
    assert (answer["http_status"], answer["response"]) == (404, ["RESOURCE_NOT_FOUND_ERROR"])
    assert "dataset" in answer["payload"]
    assert requests.get(f"{server.url}/v2/public/datasets/x", timeout=CLIENT_TIMEOUT_SECONDS).status_code == 404
    not_this_one = f"{server.url}/v2/public/projects/not-this-one"
    assert requests.get(not_this_one, timeout=CLIENT_TIMEOUT_SECONDS).status_code == 404
    assert server.request_counts == {"unknown": 2, "get_project": 1}
    assert server.answered_counts == server.request_counts  # an error is an answer


def test_only_answers_a_client_was_still_waiting_for_count_as_answered(server: FakeEncordServer, ssh_key: str) -> None:
    """What a budget on round trips counts: a request the client gave up on reached Encord but was not answered."""
    server.add_images(2)
    patience = RequestsSettings(
        max_retries=0, backoff_factor=0, connection_retries=0, connect_timeout=2, read_timeout=2, write_timeout=2
    )
    impatient = EncordUserClient.create_with_ssh_private_key(
        ssh_private_key=ssh_key, domain=server.url, requests_settings=patience
    ).get_project(server.project_hash)
    server.reset_counts()

    server.slow_next("list_label_rows", seconds=4)  # answered after the client's timeout
    with pytest.raises(RequestException):
        impatient.list_label_rows_v2()
    server.drop_next("list_label_rows")  # never answered
    with pytest.raises(RequestException):
        impatient.list_label_rows_v2()
    server.fail_next("list_label_rows", status=503)  # answered, with an error
    with pytest.raises(EncordException):
        impatient.list_label_rows_v2()
    assert len(impatient.list_label_rows_v2()) == 2
    server.wait_until_idle()  # the slow answer is written once its delay is over

    assert server.request_counts == {"list_label_rows": 4}
    assert server.answered_counts == {"list_label_rows": 2}
    assert server.unanswered_counts() == {"list_label_rows": 2}


def test_reset_forgets_data_counts_faults_and_latency(server: FakeEncordServer, project: Project) -> None:
    server.add_images(2)
    initialise(project, project.list_label_rows_v2())
    server.fail_next("list_label_rows", status=500)
    server.latency = 0.5

    server.reset()

    assert (server.request_counts, server.answered_counts, server.latency) == ({}, {}, 0.0)
    assert project.list_label_rows_v2() == []  # no injected failure left, and quick again
    assert server.request_counts == {"list_label_rows": 1}


# ---------------------------------------------------------------- branches


def test_each_branch_has_a_label_row_of_its_own_as_the_sdk_reads_and_writes_them(
    server: FakeEncordServer, project: Project, ssh_key: str
) -> None:
    data_hash = server.add_image("branched.jpg")
    for branch, x in (("main", 0.1), ("predictions", 0.5)):
        [row] = project.list_label_rows_v2(data_hashes=[data_hash], branch_name=branch)
        assert (row.branch_name, row.label_hash) == (branch, None)  # listed on the branch, not created there yet
        row.initialise_labels()
        instance = obj(project, "Cherry").create_instance()
        instance.set_for_frames(BoundingBoxCoordinates(height=0.1, width=0.1, top_left_x=x, top_left_y=0.1), frames=0)
        row.add_object_instance(instance)
        row.save()

    reader = open_project(server, ssh_key)
    rows = {row.branch_name: row for row in reader.list_label_rows_v2(include_all_label_branches=True)}
    assert set(rows) == {"main", "predictions"} == server.branches(data_hash)
    assert rows["main"].label_hash != rows["predictions"].label_hash
    initialise(reader, list(rows.values()))
    shown = {
        branch: [instance.get_annotation(0).coordinates.top_left_x for instance in row.get_object_instances()]
        for branch, row in rows.items()
    }
    assert shown == {"main": [0.1], "predictions": [0.5]}
    [main_only] = reader.list_label_rows_v2(data_hashes=[data_hash])
    assert (main_only.branch_name, main_only.label_hash) == ("main", rows["main"].label_hash)
    stored = server.label_row(data_hash, "predictions")
    assert stored is not None and stored["branch_name"] == "predictions"


def test_a_row_saved_under_another_branch_name_is_refused(server: FakeEncordServer, project: Project) -> None:
    data_hash = server.add_image("moved.jpg")
    [row] = project.list_label_rows_v2(data_hashes=[data_hash], branch_name="predictions")
    row.initialise_labels()
    labels = row.to_encord_dict()
    response = post_v1(server, "labelrow", "POST", [row.label_hash], {"labels": [{**labels, "branch_name": "main"}]})
    assert response["status"] == 400 and "branch_name" in response["message"]
    assert server.label_row(data_hash) is None
