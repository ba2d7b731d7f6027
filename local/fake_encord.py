"""A stateful fake of the Encord HTTP API, so the unmodified `encord` SDK can run against 127.0.0.1.

It serves the requests the label import makes and nothing else: the project and its ontology over the v2
REST API, and the label-row listing, bundled create, bundled get and bundled save over the legacy v1
`POST /public` RPC. The protocol comes from the encord 0.1.211 source (encord/http/querier.py,
encord/http/v2/api_client.py, encord/objects/ontology_labels_impl.py), which pyproject.toml pins.

It is deliberately strict. A label row is only stored when both a structural check and the SDK's own parser
accept it, because a lenient fake lets tests pass on payloads the real service would never see. Faults (HTTP
errors, dropped connections, latency) can be injected per request kind, and every request is counted by kind,
because "how many round trips" is the thing the importer is designed to minimise. Requests are counted twice:
as they arrive (`request_counts`), and once their answer reached a client still waiting for it
(`answered_counts`). The two differ by the requests a client gave up on (its timeout fired first, or the
connection was dropped), which a budget on round trips must not confuse with requests the importer chose to make.

Every key is accepted unless revoked (`FakeEncordServer.revoke_key`): then each request signed with it is
refused, as Encord refuses a key it does not know, with HTTP 401 and the AUTHENTICATION_ERROR code, which
the SDK raises as `AuthenticationError` (v1 from the body's code, v2 from the status). The key is identified
by the public key the SDK names in its signature headers (`Authorization: <public key hex>:<signature>` on v1,
`keyid="<public key hex>"` in `Signature-Input` on v2). The signature itself is not verified: that would only
test the SDK's signing, while what tests need is a key the service stops accepting, as after a rotation.
"""

from __future__ import annotations

import collections
import logging
import math
import mimetypes
import os
import re
import select
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_ssh_private_key,
    load_ssh_public_key,
)
from encord import EncordUserClient
from encord.http.constants import RequestsSettings
from encord.objects import (
    ChecklistAttribute,
    Classification,
    LabelRowV2,
    Object,
    OntologyStructure,
    RadioAttribute,
    Shape,
    TextAttribute,
)
from encord.objects.attributes import Attribute, NumericAttribute
from encord.objects.skeleton_template import SkeletonTemplate, SkeletonTemplateCoordinate
from encord.ontology import Ontology
from encord.orm.label_row import LabelRowMetadata
from encord.orm.ontology import Ontology as OrmOntology

log = logging.getLogger(__name__)

KINDS = (
    "get_project",
    "get_ontology",
    "list_label_rows",
    "create_label_rows",
    "get_label_rows",
    "save_label_rows",
    "set_priority",
    "workflow_complete",
    "workflow_reopen",
)
"""The request kinds `FakeEncordServer.request_counts` and `answered_counts` are keyed by (plus "unknown")."""

UNKNOWN = "unknown"

PROJECT_TITLE = "Blueberries and Cherries"
DATASET_TITLE = "Fruit"
BRANCH = "main"

_V1_KINDS = {
    ("labelrowmetadata", "GET"): "list_label_rows",
    ("labelrow", "PUT"): "create_label_rows",
    ("labelrow", "GET"): "get_label_rows",
    ("labelrow", "POST"): "save_label_rows",
    ("labelworkflowgraphnode", "POST"): "workflow_",  # + the payload's action: workflow_complete, workflow_reopen
}
_WORKFLOW_ACTIONS = {"complete": "complete", "reopen": "reopen"}  # WorkflowAction values, as the SDK sends them
_V2_ROUTES = (
    ("GET", re.compile(r"/v2/public/projects/([^/]+)"), "get_project"),
    ("GET", re.compile(r"/v2/public/ontologies/([^/]+)"), "get_ontology"),
    ("POST", re.compile(r"/v2/public/projects/([^/]+)/priorities"), "set_priority"),
)
ANNOTATE, COMPLETE = "Annotate", "Complete"
"""The workflow's stages here: every task starts in Annotate; `workflow_complete` moves it to Complete and
`workflow_reopen` back to Annotate, the first annotation stage, as Encord does."""
# v1 error codes the SDK maps to exceptions (encord/http/error_utils.py); other statuses become UNKNOWN_ERROR.
_V1_ERROR_CODES = {
    400: "INVALID_ARGUMENTS_ERROR",
    401: "AUTHENTICATION_ERROR",
    403: "AUTHORISATION_ERROR",
    404: "RESOURCE_NOT_FOUND_ERROR",
    409: "RESOURCE_EXISTS_ERROR",
    429: "RATE_LIMIT_ERROR",
}
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


# --- the ontology ------------------------------------------------------------------------------------------


def build_ontology() -> OntologyStructure:
    """The project's ontology: "Blueberries and Cherries" from the Encord docs, plus Whale, Person and Stone.

    Built with the SDK's own builders so the served dict is exactly what the SDK would write. The feature node
    hashes are fixed and readable (instead of the builders' random ones) so that stored label rows can be read
    by eye and stay the same from run to run. Titles repeat across kinds ("Cherry" is an object and an option,
    "Description" an attribute of two objects), so look them up by type: `get_child_by_title(t, type_=Object)`.
    """
    ontology = OntologyStructure()

    cherry = ontology.add_object("Cherry", Shape.BOUNDING_BOX, feature_node_hash="obCherry")
    cherry.add_attribute(TextAttribute, "Description", feature_node_hash="atChDesc")
    ripeness = cherry.add_attribute(RadioAttribute, "Ripeness", feature_node_hash="atChRipe")
    ripeness.add_option("Ripe", feature_node_hash="opRipe00")
    ripeness.add_option("Unripe", feature_node_hash="opUnripe")
    defects = cherry.add_attribute(ChecklistAttribute, "Defects", feature_node_hash="atChDefe")
    defects.add_option("Bruise", feature_node_hash="opBruise")
    defects.add_option("Crack", feature_node_hash="opCrack0")

    ontology.add_object("Other type of fruit", Shape.ROTATABLE_BOUNDING_BOX, feature_node_hash="obOther0")
    ontology.add_object("Persimmon", Shape.POLYGON, feature_node_hash="obPersim")
    ontology.add_object("Branch", Shape.POLYLINE, feature_node_hash="obBranch")
    ontology.add_object("Pedicel", Shape.POINT, feature_node_hash="obPedice")
    ontology.add_object("Blueberry", Shape.BITMASK, feature_node_hash="obBluebe")

    # name: (x, y, feature hash) of each vertex of the template.
    vertices = {
        "calyx": (0.5, 0.1, "skCalyx0"),
        "tip": (0.5, 0.9, "skTip000"),
        "left": (0.2, 0.5, "skLeft00"),
        "right": (0.8, 0.5, "skRight0"),
    }
    edge = {"color": "#000000"}
    strawberry = SkeletonTemplate(
        name="Strawberry",
        width=1.0,
        height=1.0,
        skeleton={
            str(i): SkeletonTemplateCoordinate(x=x, y=y, name=name, feature_hash=feature_hash)
            for i, (name, (x, y, feature_hash)) in enumerate(vertices.items())
        },
        # calyx-left, calyx-right, left-tip, right-tip: the outline of the fruit.
        skeleton_edges={"0": {"2": edge, "3": edge}, "2": {"1": edge}, "3": {"1": edge}},
    )
    ontology.add_skeleton_object("Strawberry", strawberry, feature_node_hash="obStrawb")

    whale = ontology.add_object("Whale", Shape.BOUNDING_BOX, feature_node_hash="obWhale0")
    whale.add_attribute(TextAttribute, "Description", feature_node_hash="atWhDesc")
    colour = whale.add_attribute(RadioAttribute, "Colour", feature_node_hash="atWhColo")
    blue = colour.add_option("Blue", feature_node_hash="opBlue00")
    other_colours = blue.add_nested_attribute(RadioAttribute, "Any Other Colours?", feature_node_hash="atWhOthe")
    other_colours.add_option("Pink", feature_node_hash="opPink00")
    other_colours.add_option("White", feature_node_hash="opWhite0")
    colour.add_option("Grey", feature_node_hash="opGrey00")
    whale.add_attribute(TextAttribute, "Description #relation", feature_node_hash="atWhRela")

    # Two objects with one title, as real ontologies have: files must name them by feature hash.
    ontology.add_object("Stone", Shape.POINT, feature_node_hash="obStoneA")
    ontology.add_object("Stone", Shape.POINT, feature_node_hash="obStoneB")

    person = ontology.add_object("Person", Shape.BOUNDING_BOX, feature_node_hash="obPerson")
    position = person.add_attribute(RadioAttribute, "Position", feature_node_hash="atPePosi", dynamic=True)
    position.add_option("Standing", feature_node_hash="opStandi")
    position.add_option("Walking", feature_node_hash="opWalkin")

    fruit = ontology.add_classification(feature_node_hash="clBluChe")
    which = fruit.add_attribute(RadioAttribute, "Blueberry or cherry?", feature_node_hash="atBluChe")
    which.add_option("Blueberry", feature_node_hash="opBluebe")
    which.add_option("Cherry", feature_node_hash="opCherry")
    many = ontology.add_classification(feature_node_hash="clManyTy")
    types = many.add_attribute(ChecklistAttribute, "Many types of fruit?", feature_node_hash="atManyTy")
    types.add_option("Apple", feature_node_hash="opApple0")
    types.add_option("Kiwi", feature_node_hash="opKiwi00")
    types.add_option("Persimmon", feature_node_hash="opPersim")
    caption = ontology.add_classification(feature_node_hash="clCaptio")
    caption.add_attribute(TextAttribute, "Caption", feature_node_hash="atCaptio")
    return ontology


def rehashed_ontology() -> OntologyStructure:
    """The demo ontology with the same titles but every feature hash replaced: another project's ontology, as an
    Encord export from one project meets it in another."""
    served = orjson.dumps(build_ontology().to_dict()).decode()
    hash_keys = ("featureNodeHash", "feature_node_hash", "featureHash", "feature_hash")
    old = sorted(set(re.findall(r'"(?:' + "|".join(hash_keys) + r')":"([^"]+)"', served)))
    renamed = {name: f"x{index:03d}{name[:4]}" for index, name in enumerate(old)}
    served = re.sub(r'"(' + "|".join(map(re.escape, old)) + r')"', lambda m: f'"{renamed[m.group(1)]}"', served)
    return OntologyStructure.from_dict(orjson.loads(served))


CLIENT_TIMEOUT_SECONDS = 60
"""How long `encord_client` waits for an answer. The fake answers in milliseconds on an idle machine but can
take seconds on a busy one (it shares its process, and the interpreter lock, with the code it serves); a
timeout that fires there turns a passing test into a failing one, so this is far above both. Injected faults
need no short timeout to show: errors are answered and connections dropped at once."""


def encord_client(domain: str, ssh_private_key: str) -> EncordUserClient:
    """An SDK client for `domain` (the fake's URL) that makes no retries of its own.

    The SDK's default retries (three, with 3 s and 6 s backoff) would turn every injected fault into a long
    wait, and hide from tests how the caller's own retry policy behaves.
    """
    settings = RequestsSettings(
        max_retries=0,
        backoff_factor=0,
        connection_retries=0,
        connect_timeout=CLIENT_TIMEOUT_SECONDS,
        read_timeout=CLIENT_TIMEOUT_SECONDS,
        write_timeout=CLIENT_TIMEOUT_SECONDS,
    )
    return EncordUserClient.create_with_ssh_private_key(
        ssh_private_key=ssh_private_key, domain=domain, requests_settings=settings
    )


# --- state -------------------------------------------------------------------------------------------------


@dataclass
class _Image:
    """One image of an image group; each is its own data unit inside the group's label row."""

    data_hash: str
    title: str
    width: int
    height: int

    @property
    def file_type(self) -> str:
        return mimetypes.guess_type(self.title)[0] or "image/jpeg"

    @property
    def data_link(self) -> str:
        return _storage_link(self.data_hash)


@dataclass
class _DataUnit:
    """One item of the project's dataset, and its label row once one exists.

    `data_type` is the label row's (lower case): image, video, img_group or dicom. Encord stores an image
    sequence as a video, so it is one here too. An image group has no size of its own (its images may differ),
    a DICOM series has no single file, hence no data link.
    """

    data_hash: str
    title: str
    data_type: str
    width: int | None
    height: int | None
    number_of_frames: int
    fps: float | None
    images: list[_Image] = field(default_factory=list)
    rows: dict[str, _LabelRow] = field(default_factory=dict)
    """The data unit's label rows, by branch: each branch has a label row of its own, with its own label hash."""
    priority: float = 0.5
    """The workflow task's priority: one task per data unit, whatever the branch."""
    stage: str = ANNOTATE

    @property
    def frame_keyed(self) -> bool:
        """Videos and DICOM series keep one data unit whose labels are keyed by frame number."""
        return self.data_type in ("video", "dicom")

    @property
    def file_type(self) -> str | None:
        if self.data_type == "img_group":
            return None
        if self.data_type == "dicom":
            return "application/dicom"
        guessed, _ = mimetypes.guess_type(self.title)
        return guessed or ("video/mp4" if self.data_type == "video" else "image/jpeg")

    @property
    def data_link(self) -> str | None:
        if self.data_type in ("img_group", "dicom"):
            return None
        return _storage_link(self.data_hash)

    def layout(self) -> dict[str, _Slot]:
        """The data units of the label row, by hash: what the SDK must send back for each."""
        if self.data_type == "img_group":
            return {
                image.data_hash: _Slot(
                    str(frame), frame, image.width, image.height, image.title, image.file_type, image.data_link
                )
                for frame, image in enumerate(self.images)
            }
        assert self.width is not None and self.height is not None
        frame = None if self.frame_keyed else 0
        return {
            self.data_hash: _Slot(0, frame, self.width, self.height, self.title, self.file_type or "", self.data_link)
        }


@dataclass
class _LabelRow:
    """One branch's label row of a data unit, once it was created there."""

    branch: str
    label_hash: str
    created_at: datetime
    last_edited_at: datetime
    label_row: dict[str, Any]
    label_status: str = "NOT_LABELLED"


@dataclass(frozen=True)
class _Slot:
    """One entry of a label row's data_units: its data_sequence, and the frame it holds unless frame-keyed."""

    data_sequence: int | str
    frame: int | None
    width: int
    height: int
    title: str
    file_type: str
    data_link: str | None  # a DICOM series has none


@dataclass(frozen=True)
class _Fault:
    """An injected answer for one request: an HTTP error, a connection closed without one, or a late answer."""

    status: int | None = None  # answer with this HTTP error and change nothing
    retry_after: int | None = None
    drop: bool = False  # close the connection without an answer
    after_commit: bool = False  # drops only: handle the request first, so only the answer is lost
    delay: float = 0.0  # handle the request, then answer this many seconds late
    held: HeldAnswer | None = None  # handle the request, then answer once the test releases it


@dataclass
class HeldAnswer:
    """An answer the fake keeps back after handling its request: as slow as a test needs, with no clock in it."""

    arrived: threading.Event = field(default_factory=threading.Event)
    """Set once the request has been handled (its change made, or its read taken) and the answer is held."""
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


@dataclass
class _Request:
    kind: str
    path: str
    resource_id: str | None = None
    body: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None  # why an unknown request is unknown
    key_id: str | None = None  # the signer's public key, hex, as the SDK names it in its headers


class _ApiError(Exception):
    """An error answer: an HTTP status plus the v1 error code the SDK turns into an exception."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _V1_ERROR_CODES.get(status, "UNKNOWN_ERROR")


class _Invalid(Exception):
    """A label row the fake refuses to store; the message names the offending field."""


def _storage_link(data_hash: str) -> str:
    return f"https://storage.fake-encord.invalid/{data_hash}"


def _new_hash() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _clone(value: Any) -> Any:
    """A deep copy through JSON: what a client would get back over the wire, and faster than copy.deepcopy."""
    return orjson.loads(orjson.dumps(value))


def _like(pattern: str) -> re.Pattern[str]:
    """SQL LIKE (`%`, `_`, backslash escapes) as a regular expression; case-sensitive, as in PostgreSQL."""
    parts: list[str] = []
    escaped = False
    for char in pattern:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def _ensure_no_proxy_for_loopback() -> None:
    """Keep requests to the fake off any HTTP(S)_PROXY: requests honours proxy variables even for 127.0.0.1."""
    for name in ("NO_PROXY", "no_proxy"):
        entries = [entry.strip() for entry in os.environ.get(name, "").split(",") if entry.strip()]
        missing = [host for host in _LOOPBACK_HOSTS if host not in entries]
        if missing:
            os.environ[name] = ",".join(entries + missing)


# --- label row validation ----------------------------------------------------------------------------------

_LABEL_ROW_KEYS = (
    "label_hash",
    "branch_name",
    "created_at",
    "last_edited_at",
    "data_hash",
    "dataset_hash",
    "dataset_title",
    "data_title",
    "data_type",
    "label_status",
    "data_units",
    "object_answers",
    "classification_answers",
    "object_actions",
)
_DATA_UNIT_KEYS = ("data_hash", "data_title", "data_type", "data_sequence")


def _attribute_tree(attributes: Iterable[Attribute]) -> dict[str, Attribute]:
    """Every attribute by feature hash, nested ones included: answers to nested attributes are listed flat."""
    found: dict[str, Attribute] = {}
    for attribute in attributes:
        found[attribute.feature_node_hash] = attribute
        if isinstance(attribute, RadioAttribute):
            for option in attribute.options:
                found.update(_attribute_tree(option.nested_options))
    return found


class _OntologyIndex:
    """The ontology by feature hash, which is how label rows refer to it."""

    def __init__(self, structure: OntologyStructure) -> None:
        self.objects: dict[str, Object] = {item.feature_node_hash: item for item in structure.objects}
        self.classifications: dict[str, Classification] = {
            item.feature_node_hash: item for item in structure.classifications
        }
        self.attributes: dict[str, dict[str, Attribute]] = {
            item.feature_node_hash: _attribute_tree(item.attributes)
            for item in [*structure.objects, *structure.classifications]
        }
        self.skeleton_vertices: dict[str, set[str]] = {
            template.feature_node_hash: {vertex.name for vertex in template.skeleton.values()}
            for template in structure.skeleton_templates.values()
            if template.feature_node_hash is not None
        }


def _mapping(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(f"{path} must be an object, got {type(value).__name__}")
    return value


def _sequence(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Invalid(f"{path} must be a list, got {type(value).__name__}")
    return value


def _number(container: Mapping[str, Any], key: str, path: str) -> None:
    value = container.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Invalid(f"{path}.{key} must be a finite number, got {value!r}")


def _numbers(value: Any, keys: Iterable[str], path: str) -> None:
    container = _mapping(value, path)
    for key in keys:
        _number(container, key, path)


def _points(value: Any, path: str) -> None:
    """Points as the SDK writes them ({"0": {x, y}, ...}) or as a list of {x, y}; at least one."""
    points = list(value.values()) if isinstance(value, dict) else value
    if not isinstance(points, list) or not points:
        raise _Invalid(f"{path} must hold at least one {{x, y}} point")
    for i, point in enumerate(points):
        _numbers(point, ("x", "y"), f"{path}[{i}]")


def _check_geometry(shape: str, frame_object: dict[str, Any], path: str, slot: _Slot, index: _OntologyIndex) -> None:
    """The geometry key the SDK reads for `shape` is present and well formed."""
    if shape == Shape.BOUNDING_BOX.value:
        _numbers(frame_object.get("boundingBox"), ("h", "w", "x", "y"), f"{path}.boundingBox")
    elif shape == Shape.ROTATABLE_BOUNDING_BOX.value:
        _numbers(
            frame_object.get("rotatableBoundingBox"),
            ("h", "w", "x", "y", "theta"),
            f"{path}.rotatableBoundingBox",
        )
    elif shape == Shape.POLYGON.value:
        if frame_object.get("polygon"):
            _points(frame_object["polygon"], f"{path}.polygon")
        elif not frame_object.get("polygons"):
            raise _Invalid(f"{path} is a polygon without `polygon` or `polygons` coordinates")
    elif shape == Shape.POLYLINE.value:
        _points(frame_object.get("polyline"), f"{path}.polyline")
    elif shape == Shape.POINT.value:
        point = _mapping(frame_object.get("point"), f"{path}.point")
        _numbers(point.get("0"), ("x", "y"), f"{path}.point.0")
    elif shape == Shape.BITMASK.value:
        bitmask = _mapping(frame_object.get("bitmask"), f"{path}.bitmask")
        if not isinstance(bitmask.get("rleString"), str):
            raise _Invalid(f"{path}.bitmask.rleString must be a string")
        if (bitmask.get("height"), bitmask.get("width")) != (slot.height, slot.width):
            raise _Invalid(
                f"{path}.bitmask is {bitmask.get('width')}x{bitmask.get('height')}, "
                f"the image is {slot.width}x{slot.height}"
            )
        _numbers(bitmask, ("top", "left"), f"{path}.bitmask")
    elif shape == Shape.SKELETON.value:
        skeleton = _mapping(frame_object.get("skeleton"), f"{path}.skeleton")
        _points(skeleton, f"{path}.skeleton")
        names = {point.get("name") for point in skeleton.values()}
        expected = index.skeleton_vertices.get(frame_object["featureHash"])
        if expected is not None and names != expected:
            raise _Invalid(f"{path}.skeleton has vertices {sorted(map(str, names))}, the template {sorted(expected)}")
    else:
        raise _Invalid(f"{path}.shape {shape!r} is not supported by the fake")


def _check_ranges(value: Any, path: str, number_of_frames: int) -> None:
    """Inclusive [start, end] frame ranges inside the data unit. The SDK silently drops a classification without
    one, so an empty or missing range is refused rather than stored as a label nobody can read back."""
    ranges = _sequence(value, path)
    if not ranges:
        raise _Invalid(f"{path} must hold at least one [start, end] frame range")
    for i, frame_range in enumerate(ranges):
        if (
            not isinstance(frame_range, list)
            or len(frame_range) != 2
            or not all(isinstance(frame, int) and not isinstance(frame, bool) for frame in frame_range)
            or not 0 <= frame_range[0] <= frame_range[1] < number_of_frames
        ):
            raise _Invalid(f"{path}[{i}] = {frame_range!r} is not a frame range within 0..{number_of_frames - 1}")


def _check_answers(
    value: Any, attributes: Mapping[str, Attribute], path: str, *, dynamic: bool, number_of_frames: int
) -> None:
    """Attribute answers refer to attributes of their own object or classification, and to their options."""
    for i, answer in enumerate(_sequence(value, path)):
        at = f"{path}[{i}]"
        answer = _mapping(answer, at)
        attribute = attributes.get(answer.get("featureHash"))
        if attribute is None:
            raise _Invalid(f"{at}.featureHash {answer.get('featureHash')!r} is not an attribute of this feature")
        if attribute.dynamic != dynamic:
            where = "object_actions" if attribute.dynamic else "object_answers / classification answers"
            raise _Invalid(f"{at}: attribute {attribute.title!r} belongs in {where}")
        if "answers" not in answer:
            raise _Invalid(f"{at} has no `answers`")
        given = answer["answers"]
        if isinstance(attribute, TextAttribute):
            if not isinstance(given, str):
                raise _Invalid(f"{at}.answers must be a string for text attribute {attribute.title!r}")
        elif isinstance(attribute, NumericAttribute):
            _number(answer, "answers", at)
        else:
            options = {option.feature_node_hash for option in attribute.options}
            chosen = _sequence(given, f"{at}.answers")
            for j, option in enumerate(chosen):
                if _mapping(option, f"{at}.answers[{j}]").get("featureHash") not in options:
                    raise _Invalid(f"{at}.answers[{j}] is not an option of {attribute.title!r}")
            if isinstance(attribute, RadioAttribute) and len(chosen) > 1:
                raise _Invalid(f"{at}.answers: radio attribute {attribute.title!r} takes one option")
        if dynamic:
            _check_ranges(answer.get("range"), f"{at}.range", number_of_frames)


def _frames(labels: Any, slot: _Slot, unit: _DataUnit, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(frame path, frame labels) pairs of one data unit: images (alone or in a group) hold one frame
    directly, videos and DICOM series key their frames by number."""
    labels = _mapping(labels if labels is not None else {}, path)
    if slot.frame is not None:
        yield path, labels
        return
    for frame, frame_labels in labels.items():
        if not (frame.isdigit() and int(frame) < unit.number_of_frames):
            last = unit.number_of_frames - 1
            raise _Invalid(f"{path} has frame {frame!r}, the {unit.data_type} has frames 0..{last}")
        yield f"{path}.{frame}", _mapping(frame_labels, f"{path}.{frame}")


def _validate_label_row(row: Any, unit: _DataUnit, stored: _LabelRow, index: _OntologyIndex) -> None:
    """Refuse anything the SDK would misread, drop silently, or crash on; see the module docstring for why."""
    row = _mapping(row, "label row")
    missing = [key for key in _LABEL_ROW_KEYS if key not in row]
    if missing:
        raise _Invalid(f"label row is missing {', '.join(missing)}")
    for key, expected in (
        ("label_hash", stored.label_hash),
        ("branch_name", stored.branch),
        ("data_hash", unit.data_hash),
        ("data_type", unit.data_type),
    ):
        if row[key] != expected:
            raise _Invalid(f"label row {key} is {row[key]!r}, the stored row has {expected!r}")
    classification_answers = _mapping(row["classification_answers"], "classification_answers")
    object_features = _check_data_units(row["data_units"], unit, index, classification_answers)
    _check_object_answers(row["object_answers"], row["object_actions"], object_features, unit, index)
    _check_classification_answers(classification_answers, unit, index)


def _check_data_units(
    value: Any, unit: _DataUnit, index: _OntologyIndex, classification_answers: Mapping[str, Any]
) -> dict[str, str]:
    """The data units the stored row has, and the objects on their frames; returns each objectHash's object."""
    data_units = _mapping(value, "data_units")
    layout = unit.layout()
    if set(data_units) != set(layout):
        raise _Invalid(f"data_units must hold exactly the data units {sorted(layout)}, got {sorted(data_units)}")
    object_features: dict[str, str] = {}
    for data_hash, slot in layout.items():
        path = f"data_units.{data_hash}"
        data_unit = _mapping(data_units[data_hash], path)
        missing = [key for key in _DATA_UNIT_KEYS if key not in data_unit]
        if missing:
            raise _Invalid(f"{path} is missing {', '.join(missing)}")
        if data_unit["data_sequence"] != slot.data_sequence:
            # The SDK numbers an image group's frames by it, so a wrong one moves labels to another image.
            raise _Invalid(f"{path}.data_sequence is {data_unit['data_sequence']!r}, expected {slot.data_sequence!r}")
        if (data_unit.get("width"), data_unit.get("height")) != (slot.width, slot.height):
            # The SDK sizes the row (and checks bitmasks) from these, not from the listing.
            raise _Invalid(f"{path} width/height must be {slot.width}/{slot.height}, the data unit's size")
        for frame_path, frame_labels in _frames(data_unit.get("labels"), slot, unit, f"{path}.labels"):
            _check_frame(frame_path, frame_labels, slot, index, classification_answers, object_features)
    return object_features


def _check_frame(
    path: str,
    labels: Mapping[str, Any],
    slot: _Slot,
    index: _OntologyIndex,
    classification_answers: Mapping[str, Any],
    object_features: dict[str, str],
) -> None:
    """The objects on one frame; records each objectHash's ontology object in `object_features`."""
    in_frame: set[str] = set()
    for i, frame_object in enumerate(_sequence(labels.get("objects", []), f"{path}.objects")):
        at = f"{path}.objects[{i}]"
        frame_object = _mapping(frame_object, at)
        object_hash, feature_hash = frame_object.get("objectHash"), frame_object.get("featureHash")
        if not isinstance(object_hash, str) or not object_hash:
            raise _Invalid(f"{at} has no objectHash")
        ontology_object = index.objects.get(feature_hash)
        if ontology_object is None:
            raise _Invalid(f"{at}.featureHash {feature_hash!r} is not an object in the ontology")
        shape = ontology_object.shape.value
        if frame_object.get("shape") != shape:
            raise _Invalid(f"{at}.shape is {frame_object.get('shape')!r}, {ontology_object.title!r} is a {shape}")
        if object_hash in in_frame:
            raise _Invalid(f"{at}: objectHash {object_hash} appears twice in one frame")
        if object_features.setdefault(object_hash, feature_hash) != feature_hash:
            raise _Invalid(f"{at}: objectHash {object_hash} is used for two different ontology objects")
        in_frame.add(object_hash)
        _check_geometry(shape, frame_object, at, slot, index)
    # 0.1.211 writes classifications only to classification_answers; older writers list them per frame too.
    for i, entry in enumerate(_sequence(labels.get("classifications", []), f"{path}.classifications")):
        at = f"{path}.classifications[{i}]"
        if _mapping(entry, at).get("classificationHash") not in classification_answers:
            raise _Invalid(f"{at} has no entry in classification_answers")


def _check_object_answers(
    answers: Any, actions: Any, object_features: Mapping[str, str], unit: _DataUnit, index: _OntologyIndex
) -> None:
    """Static answers (object_answers) and dynamic ones (object_actions) of the objects on the frames."""
    answers = _mapping(answers, "object_answers")
    for object_hash in object_features:
        if object_hash not in answers:
            raise _Invalid(f"object {object_hash} is in data_units but not in object_answers")
    for object_hash, answer in answers.items():
        at = f"object_answers.{object_hash}"
        if _mapping(answer, at).get("objectHash") != object_hash:
            raise _Invalid(f"{at}.objectHash must equal its key")
        # Answers of an object no frame shows are orphans the SDK skips, as the real service keeps some.
        if object_hash in object_features:
            _check_answers(
                answer.get("classifications"),
                index.attributes[object_features[object_hash]],
                f"{at}.classifications",
                dynamic=False,
                number_of_frames=unit.number_of_frames,
            )
    for object_hash, action in _mapping(actions, "object_actions").items():
        at = f"object_actions.{object_hash}"
        if _mapping(action, at).get("objectHash") != object_hash or object_hash not in object_features:
            raise _Invalid(f"{at} is not keyed by the objectHash of an object in data_units")
        _check_answers(
            action.get("actions"),
            index.attributes[object_features[object_hash]],
            f"{at}.actions",
            dynamic=True,
            number_of_frames=unit.number_of_frames,
        )


def _check_classification_answers(answers: Mapping[str, Any], unit: _DataUnit, index: _OntologyIndex) -> None:
    for classification_hash, answer in answers.items():
        at = f"classification_answers.{classification_hash}"
        answer = _mapping(answer, at)
        if answer.get("classificationHash") != classification_hash:
            raise _Invalid(f"{at}.classificationHash must equal its key")
        feature_hash = answer.get("featureHash")
        if feature_hash not in index.classifications:
            raise _Invalid(f"{at}.featureHash {feature_hash!r} is not a classification in the ontology")
        _check_ranges(answer.get("range"), f"{at}.range", unit.number_of_frames)
        _check_answers(
            answer.get("classifications"),
            index.attributes[feature_hash],
            f"{at}.classifications",
            dynamic=False,
            number_of_frames=unit.number_of_frames,
        )


# --- the HTTP side -----------------------------------------------------------------------------------------


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 makes a burst of parallel clients wait out TCP's SYN retry (a second or more).
    request_queue_size = 128

    def __init__(self, fake: FakeEncordServer) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout, dropped test) is not the fake's failure; keep stderr quiet about it.
        log.debug("fake Encord: error while serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer

    def do_GET(self) -> None:
        self.server.fake._serve(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fake Encord: " + format, *args)


def _client_is_waiting(handler: BaseHTTPRequestHandler) -> bool:
    """Whether the client of this request still waits for its answer, rather than having closed the connection.

    A client whose timeout fired closes its socket (urllib3 discards the connection), so the end of the stream
    is already readable here; a client still waiting sends nothing more (requests does not pipeline). Writing
    the answer cannot tell the two apart: the kernel accepts bytes for a peer that has gone.
    """
    connection: socket.socket = handler.connection
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return not readable or connection.recv(1, socket.MSG_PEEK) != b""
    except OSError:  # reset by the peer: gone too
        return False


def _reply(handler: BaseHTTPRequestHandler, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
    data = orjson.dumps(body)
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def _error_body(error: _ApiError) -> dict[str, Any]:
    """One body both clients understand: v1 reads status/response/payload, v2 reads the HTTP status and message."""
    return {
        "status": error.status,
        "response": [error.code],
        "payload": error.message,
        "message": error.message,
    }


_V2_KEY_ID = re.compile(r'keyid="([0-9a-fA-F]+)"')


def _key_id(handler: BaseHTTPRequestHandler) -> str | None:
    """The public key (hex) a request says it is signed with: v1 puts it before the signature in Authorization,
    v2 in Signature-Input's keyid (encord/configs.py, encord/http/v2/request_signer.py)."""
    found = _V2_KEY_ID.search(handler.headers.get("Signature-Input") or "")
    if found:
        return found.group(1).lower()
    authorization = handler.headers.get("Authorization") or ""
    public_key, colon, _ = authorization.partition(":")
    return public_key.lower() if colon and public_key else None


def public_key_hex(key: str) -> str:
    """The raw Ed25519 public key, hex, that the SDK names in its headers, from an OpenSSH private key, an
    `ssh-ed25519 AAAA...` public key line, or that hex itself."""
    text = key.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return text.lower()
    loaded = load_ssh_private_key(text.encode(), None) if text.startswith("-----BEGIN") else None
    public = loaded.public_key() if isinstance(loaded, Ed25519PrivateKey) else None
    if public is None and text.startswith("ssh-ed25519 "):
        public = load_ssh_public_key(text.encode())
    if not isinstance(public, Ed25519PublicKey):
        raise ValueError("not an Ed25519 key: expected an OpenSSH private key, an ssh-ed25519 line or 64 hex digits")
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _parse_request(handler: BaseHTTPRequestHandler) -> _Request:
    request = _parse_route(handler)
    request.key_id = _key_id(handler)
    return request


def _parse_route(handler: BaseHTTPRequestHandler) -> _Request:
    method = handler.command
    path = urlsplit(handler.path).path
    raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    if path == "/public" and method == "POST":
        try:
            body = orjson.loads(raw)
            query = (body["query_type"], body["query_method"])
            values = _mapping(body["values"], "values")
        except (orjson.JSONDecodeError, KeyError, TypeError, _Invalid) as error:
            return _Request(UNKNOWN, path, problem=f"not a v1 request body: {error}")
        if query not in _V1_KINDS:
            return _Request(UNKNOWN, path, problem=f"query_type={query[0]!r} query_method={query[1]!r}")
        kind = _V1_KINDS[query]
        if kind == "workflow_":
            action = (values.get("payload") or {}).get("action") if isinstance(values.get("payload"), dict) else None
            if action not in _WORKFLOW_ACTIONS:
                return _Request(UNKNOWN, path, problem=f"workflow action {action!r}")
            kind += _WORKFLOW_ACTIONS[action]
        return _Request(kind, path, handler.headers.get("ResourceID"), values)
    for route_method, pattern, kind in _V2_ROUTES:
        match = pattern.fullmatch(path)
        if match and method == route_method:
            try:
                body = orjson.loads(raw) if raw else {}
            except orjson.JSONDecodeError as error:
                return _Request(UNKNOWN, path, problem=f"not a JSON body: {error}")
            return _Request(kind, path, match.group(1), body if isinstance(body, dict) else {})
    return _Request(UNKNOWN, path, problem=f"{method} {path}")


class FakeEncordServer:
    """One project ("Blueberries and Cherries") with its ontology and dataset, served on 127.0.0.1.

    State lives in memory behind one lock; the HTTP server answers each request on its own thread, so the
    latency of concurrent requests overlaps as it would against the real service.
    """

    def __init__(self, *, latency: float = 0.0) -> None:
        self.latency = latency
        self._initial_latency = latency
        self.project_hash = str(uuid.uuid4())
        self.ontology_hash = str(uuid.uuid4())
        self.dataset_hash = str(uuid.uuid4())
        self.workflow_stage_uuid = str(uuid.uuid4())
        self.created_at = _now()
        structure = build_ontology()
        self.ontology: dict[str, Any] = {}
        self.request_counts: collections.Counter[str] = collections.Counter()
        """Requests received, by kind, whether or not their client was still there for the answer."""
        self.answered_counts: collections.Counter[str] = collections.Counter()
        """Requests whose answer (a result or an error) was written to a client still waiting for it, by kind:
        what the importer got back. A request whose client timed out first, or whose connection was dropped
        (an injected fault), is in `request_counts` only."""
        self.refused_counts: collections.Counter[str] = collections.Counter()
        """Requests refused for being signed with a revoked key, by kind (counted in the two above as well)."""
        self._in_flight = 0
        self.most_in_flight = 0
        """The most requests it has been answering at once since the counts were reset."""
        self._idle = threading.Condition()
        self.use_ontology(structure)
        self._lock = threading.Lock()
        self._units: dict[str, _DataUnit] = {}
        self._by_label_hash: dict[str, tuple[_DataUnit, _LabelRow]] = {}
        self._faults: dict[str, collections.deque[_Fault]] = collections.defaultdict(collections.deque)
        self._refused: set[str] = set()
        self._revoked: set[str] = set()
        self._http: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> FakeEncordServer:
        if self._http is not None:
            raise RuntimeError("the fake Encord server is already running")
        _ensure_no_proxy_for_loopback()
        self._http = _HttpServer(self)
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-encord", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._http is None:
            return
        self._http.shutdown()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._http = self._thread = None

    def __enter__(self) -> FakeEncordServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, with no path: the SDK drops any path when it builds v2 URLs."""
        if self._http is None:
            raise RuntimeError("the fake Encord server is not running; call start() first")
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def reset(self) -> None:
        """Back to just after start(): no data, no labels, no counts, no pending faults, no revoked keys, the
        initial latency.

        The project, ontology and URL stay, so clients and the environment built on them remain valid.
        """
        with self._lock:
            self._units.clear()
            self._by_label_hash.clear()
            self._faults.clear()
            self._refused.clear()
            self._revoked.clear()
            self.request_counts.clear()
            self.answered_counts.clear()
            self.refused_counts.clear()
            self.latency = self._initial_latency
        self.use_ontology(build_ontology())

    def use_ontology(self, structure: OntologyStructure) -> None:
        """Serve `structure` as the project's ontology from now on (reset() puts the demo one back): a project
        with another ontology. Importers that cached the project must be cold-started to see it."""
        self.ontology = structure.to_dict()
        self._index = _OntologyIndex(structure)
        # The SDK's own parser, offline (no project client), as the last word on whether a row is readable.
        self._sdk_ontology = Ontology(
            OrmOntology(
                title=PROJECT_TITLE,
                structure=structure,
                ontology_hash=self.ontology_hash,
                created_at=self.created_at,
                last_edited_at=self.created_at,
            ),
            api_client=None,  # type: ignore[arg-type]
        )

    # --- data ----------------------------------------------------------------------------------------------

    def add_image(self, title: str, *, width: int = 640, height: int = 480, data_hash: str | None = None) -> str:
        """Each `add_*` returns the new data unit's hash: `data_hash`, or a new one when it is not given."""
        unit = _DataUnit(data_hash or _new_hash(), title, "image", width, height, number_of_frames=1, fps=None)
        return self._add(unit)

    def add_video(
        self,
        title: str,
        *,
        number_of_frames: int,
        width: int = 640,
        height: int = 480,
        fps: float = 25.0,
        data_hash: str | None = None,
    ) -> str:
        return self._add(_DataUnit(data_hash or _new_hash(), title, "video", width, height, number_of_frames, fps))

    def add_images(self, count: int, *, prefix: str = "image", width: int = 640, height: int = 480) -> list[str]:
        return [self.add_image(f"{prefix}_{i:05d}.jpg", width=width, height=height) for i in range(count)]

    def add_image_sequence(
        self, title: str, *, number_of_images: int, width: int = 640, height: int = 480, data_hash: str | None = None
    ) -> str:
        """Encord encodes an image sequence (images of one size) as a video, one frame per image, and serves
        it as a video from then on; 1 fps is a placeholder, frames are what labels address."""
        unit = _DataUnit(data_hash or _new_hash(), title, "video", width, height, number_of_images, fps=1.0)
        return self._add(unit)

    def add_image_group(self, title: str, sizes: Iterable[tuple[int, int]], *, data_hash: str | None = None) -> str:
        """An image group of one image per (width, height), titled `<title>/<index>.jpg`; sizes may differ."""
        images = [_Image(_new_hash(), f"{title}/{i:03d}.jpg", w, h) for i, (w, h) in enumerate(sizes)]
        if not images:
            raise ValueError("an image group needs at least one image")
        unit = _DataUnit(data_hash or _new_hash(), title, "img_group", None, None, len(images), None, images)
        return self._add(unit)

    def add_dicom_series(
        self, title: str, *, number_of_slices: int, width: int = 512, height: int = 512, data_hash: str | None = None
    ) -> str:
        unit = _DataUnit(data_hash or _new_hash(), title, "dicom", width, height, number_of_slices, fps=None)
        return self._add(unit)

    def _add(self, unit: _DataUnit) -> str:
        with self._lock:
            if unit.data_hash in self._units:
                raise ValueError(f"the fake already has a data unit {unit.data_hash}")
            self._units[unit.data_hash] = unit
        return unit.data_hash

    def label_row(self, data_hash: str, branch: str = BRANCH) -> dict[str, Any] | None:
        """A copy of the branch's label row as last created or saved, or None while the data unit has none there.

        Raises KeyError for a data hash the fake never handed out, which is a bug in the test, not "no labels".
        """
        with self._lock:
            stored = self._units[data_hash].rows.get(branch)
            return _clone(stored.label_row) if stored is not None else None

    def task(self, data_hash: str) -> tuple[str, float]:
        """The data unit's workflow task: its stage and its priority."""
        with self._lock:
            unit = self._units[data_hash]
            return unit.stage, unit.priority

    def branches(self, data_hash: str) -> set[str]:
        """The branches on which the data unit has a label row."""
        with self._lock:
            return set(self._units[data_hash].rows)

    # --- requests and faults -------------------------------------------------------------------------------

    def reset_counts(self) -> None:
        with self._lock:
            self.request_counts.clear()
            self.answered_counts.clear()
            self.refused_counts.clear()
        with self._idle:
            self.most_in_flight = self._in_flight

    def unanswered_counts(self) -> collections.Counter[str]:
        """Requests received but never answered to a waiting client, by kind (timed out or dropped)."""
        with self._lock:
            return self.request_counts - self.answered_counts

    def wait_until_idle(self, timeout: float = 120.0) -> None:
        """Return once no request is being handled, so the counts are final: a request whose client gave up
        may still be handled (a slow answer sleeping out its delay) after the client has moved on."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._in_flight == 0, timeout):
                raise TimeoutError(f"fake Encord: {self._in_flight} requests still in flight after {timeout} s")

    def write_requests(self) -> int:
        with self._lock:
            return self.request_counts["create_label_rows"] + self.request_counts["save_label_rows"]

    def fail_next(self, kind: str, *, status: int = 503, times: int = 1, retry_after: int | None = None) -> None:
        """Answer the next `times` requests of `kind` with HTTP `status` (and Retry-After), changing nothing.

        The body carries the v1 error code the SDK expects for the status, e.g. RATE_LIMIT_ERROR for 429 and
        UNKNOWN_ERROR for 5xx. Retries the SDK itself makes are requests too, and use up `times`.
        """
        if status < 400:
            raise ValueError(f"an injected failure needs an error status, got {status}")
        self._inject(kind, times, _Fault(status, retry_after))

    def drop_next(self, kind: str, *, times: int = 1, after_commit: bool = False) -> None:
        """Close the connection of the next `times` requests of `kind` without answering.

        By default nothing changes, as if the request never arrived. With `after_commit` the request is handled
        first and only the answer is lost: the ambiguous failure a client cannot tell apart from the other.
        """
        self._inject(kind, times, _Fault(drop=True, after_commit=after_commit))

    def slow_next(self, kind: str, *, seconds: float, times: int = 1) -> None:
        """Handle the next `times` requests of `kind`, then answer `seconds` late: past a client's timeout, the
        change is made but the client sees a timeout."""
        self._inject(kind, times, _Fault(delay=seconds))

    def hold_next(self, kind: str) -> HeldAnswer:
        """Handle the next request of `kind`, then hold its answer until the test calls `release()` on what this
        returns (or ten minutes pass, so a failing test cannot hang the run)."""
        held = HeldAnswer()
        self._inject(kind, 1, _Fault(held=held))
        return held

    def refuse_saves(self, data_hash: str) -> None:
        """Reject (HTTP 400) every save that includes this data unit's label row, as the service rejects a row
        it finds invalid: the whole bundled save fails and stores nothing."""
        with self._lock:
            self._refused.add(data_hash)

    def revoke_key(self, key: str) -> None:
        """Refuse every request signed with this key from now on (until `reset`), as Encord refuses a key that
        was removed from its user's profile: HTTP 401, AUTHENTICATION_ERROR, nothing changed. `key` is the
        OpenSSH private key, its `ssh-ed25519` public key line, or the public key's hex."""
        revoked = public_key_hex(key)
        with self._lock:
            self._revoked.add(revoked)

    def _inject(self, kind: str, times: int, fault: _Fault) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown request kind {kind!r}; expected one of {', '.join(KINDS)}")
        with self._lock:
            self._faults[kind].extend([fault] * times)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        with self._idle:
            self._in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self._in_flight)
        try:
            self._serve_counted(handler)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _answer(
        self,
        handler: BaseHTTPRequestHandler,
        kind: str,
        status: int,
        body: Any,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Write the answer, counted as answered if its client is still waiting for it.

        Counted before the write, so that a client that has read its answer always finds it counted; taken back
        if the write fails (the client left meanwhile).
        """
        waiting = _client_is_waiting(handler)
        if waiting:
            with self._lock:
                self.answered_counts[kind] += 1
        try:
            _reply(handler, status, body, headers)
        except OSError:
            if waiting:
                with self._lock:
                    self.answered_counts[kind] -= 1
            raise

    def _serve_counted(self, handler: BaseHTTPRequestHandler) -> None:
        request = _parse_request(handler)
        with self._lock:
            self.request_counts[request.kind] += 1
            # Refused before anything else, as the service authenticates first: it uses up no injected fault.
            revoked = request.key_id in self._revoked
            if revoked:
                self.refused_counts[request.kind] += 1
            queued = None if revoked else self._faults.get(request.kind)
            fault = queued.popleft() if queued else None
        if self.latency > 0:
            time.sleep(self.latency)
        if revoked:
            refusal = _ApiError(401, "fake Encord: the request is signed with a key that was revoked")
            self._answer(handler, request.kind, 401, _error_body(refusal))
            return
        if fault is not None and fault.status is not None:
            error = _ApiError(fault.status, f"fake Encord: injected HTTP {fault.status} for {request.kind}")
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
            self._answer(handler, request.kind, fault.status, _error_body(error), headers)
            return
        if fault is not None and fault.drop and not fault.after_commit:
            handler.close_connection = True
            return
        try:
            result = self._handle(request)
            # v1 wraps results in an envelope whose integer status the SDK checks; v2 sends them bare.
            status, body = 200, ({"status": 200, "response": result} if request.path == "/public" else result)
        except _ApiError as error:
            status, body = error.status, _error_body(error)
        except Exception as error:  # a bug in the fake: say so, rather than look like an Encord outage
            log.exception("fake Encord failed on %s", request.kind)
            failure = _ApiError(500, f"fake Encord crashed: {type(error).__name__}: {error}", "FAKE_ENCORD_BUG")
            status, body = 500, _error_body(failure)
        if fault is not None and fault.drop:  # dropped after the change was made
            handler.close_connection = True
            return
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.held is not None:
            fault.held.arrived.set()
            fault.held.released.wait(timeout=600)
        self._answer(handler, request.kind, status, body)

    def _handle(self, request: _Request) -> Any:
        if request.kind == UNKNOWN:
            log.warning("fake Encord: unsupported request %s", request.problem)
            raise _ApiError(404, f"fake Encord does not implement this request: {request.problem}")
        if request.kind == "get_project":
            return self._get_project(request.resource_id)
        if request.kind == "get_ontology":
            return self._get_ontology(request.resource_id)
        if request.kind == "set_priority":
            return self._set_priority(request.resource_id, request.body)
        if request.resource_id is not None and request.resource_id != self.project_hash:
            raise _ApiError(404, f"project {request.resource_id} not found")
        uids = request.body.get("uid")
        if isinstance(uids, str):
            uids = [uids]
        payload = request.body.get("payload") or {}
        with self._lock:
            if request.kind == "list_label_rows":
                return self._list(payload)
            if not isinstance(uids, list) or not all(isinstance(uid, str) for uid in uids):
                raise _ApiError(400, f"uid must be a list of hashes, got {uids!r}")
            if request.kind == "create_label_rows":
                return self._create(uids, payload)
            if request.kind == "get_label_rows":
                return self._get(uids, payload)
            if request.kind.startswith("workflow_"):
                return self._move(uids, COMPLETE if request.kind == "workflow_complete" else ANNOTATE)
            return self._save(uids, payload)

    # --- v2 ------------------------------------------------------------------------------------------------

    def _get_project(self, project_hash: str | None) -> dict[str, Any]:
        if project_hash != self.project_hash:
            raise _ApiError(404, f"project {project_hash} not found")
        return {
            "projectHash": self.project_hash,
            "projectType": "workflow",
            "status": "inProgress",
            "title": PROJECT_TITLE,
            "description": "A fake Encord project for local runs and tests.",
            "createdAt": _iso(self.created_at),
            "creatorEmail": "fake@encord.invalid",
            "lastEditedAt": _iso(self.created_at),
            "ontologyHash": self.ontology_hash,
            "editorOntology": self.ontology,
            "userRole": 0,
        }

    def _get_ontology(self, ontology_hash: str | None) -> dict[str, Any]:
        if ontology_hash != self.ontology_hash:
            raise _ApiError(404, f"ontology {ontology_hash} not found")
        return {
            "ontologyUuid": self.ontology_hash,
            "title": PROJECT_TITLE,
            "description": "",
            "editor": self.ontology,
            "createdAt": _iso(self.created_at),
            "lastEditedAt": _iso(self.created_at),
            "userRole": None,
        }

    def _set_priority(self, project_hash: str | None, body: Mapping[str, Any]) -> None:
        """Set the priority of each (data hash, priority) pair; all or nothing, as one request is."""
        if project_hash != self.project_hash:
            raise _ApiError(404, f"project {project_hash} not found")
        pairs = body.get("priorities")
        if not isinstance(pairs, list):
            raise _ApiError(400, f"priorities must be a list of [data_hash, priority], got {pairs!r}")
        with self._lock:
            checked = []
            for pair in pairs:
                if not (isinstance(pair, list) and len(pair) == 2 and pair[0] in self._units):
                    raise _ApiError(400, f"not a [data_hash, priority] of this project: {pair!r}")
                if not (isinstance(pair[1], int | float) and 0 <= pair[1] <= 1):
                    raise _ApiError(400, f"a priority is a number from 0 to 1, got {pair[1]!r}")
                checked.append(pair)
            for data_hash, priority in checked:
                self._units[data_hash].priority = float(priority)

    # --- v1 (called with the lock held) --------------------------------------------------------------------

    def _metadata(self, unit: _DataUnit, branch: str, *, include_images_data: bool = False) -> dict[str, Any]:
        """A listing's entry for the data unit on `branch`: a label row not created there yet has no label hash."""
        images_data = [
            {
                "index": frame,
                "title": image.title,
                "file_type": image.file_type,
                "height": image.height,
                "width": image.width,
                "image_hash": image.data_hash,
            }
            for frame, image in enumerate(unit.images)
        ]
        stored = unit.rows.get(branch)
        return {
            "label_hash": stored.label_hash if stored else None,
            "created_at": _iso(stored.created_at) if stored else None,
            "last_edited_at": _iso(stored.last_edited_at) if stored else None,
            "branch_name": branch,
            "data_hash": unit.data_hash,
            "dataset_hash": self.dataset_hash,
            "dataset_title": DATASET_TITLE,
            "data_title": unit.title,
            "data_type": unit.data_type.upper(),  # upper case here, lower case in label rows
            "data_link": unit.data_link,
            "label_status": stored.label_status if stored else "NOT_LABELLED",
            "annotation_task_status": "QUEUED",
            "workflow_graph_node": {"uuid": self.workflow_stage_uuid, "title": unit.stage},
            "priority": unit.priority,
            "is_shadow_data": False,
            "number_of_frames": unit.number_of_frames,
            "frames_per_second": unit.fps,
            "duration": unit.number_of_frames / unit.fps if unit.fps else None,
            "width": unit.width,
            "height": unit.height,
            "spaces": {},
            "file_type": unit.file_type,
            "images_data": images_data if include_images_data and unit.images else None,
        }

    def _list(self, payload: Mapping[str, Any]) -> list[dict[str, Any]]:
        """One entry per data unit on the branch asked for (`main` when none is), or, with
        `include_all_label_branches`, one per label row on any branch."""
        unsupported = [
            key
            for key in ("shadow_data_state", "workflow_graph_node_title_eq", "workflow_graph_node_title_like")
            if payload.get(key) is not None
        ]
        if unsupported:
            raise _ApiError(400, f"fake Encord does not support the listing filters {', '.join(unsupported)}")
        every_branch = bool(payload.get("include_all_label_branches"))
        asked = payload.get("branch_name")
        if every_branch and asked is not None:
            raise _ApiError(400, "branch_name cannot be given with include_all_label_branches")
        if asked is not None and not isinstance(asked, str):
            raise _ApiError(400, f"branch_name must be a string, got {asked!r}")
        units: Iterable[_DataUnit] = self._units.values()
        if payload.get("data_hashes") is not None:
            wanted = set(payload["data_hashes"])
            units = [unit for unit in units if unit.data_hash in wanted]
        if payload.get("data_title_eq") is not None:
            units = [unit for unit in units if unit.title == payload["data_title_eq"]]
        if payload.get("data_title_like") is not None:
            pattern = _like(payload["data_title_like"])
            units = [unit for unit in units if pattern.fullmatch(unit.title)]
        entries = [
            (unit, branch)
            for unit in units
            for branch in (sorted(unit.rows) or [BRANCH] if every_branch else [asked or BRANCH])
        ]
        if payload.get("label_hashes") is not None:
            wanted = set(payload["label_hashes"])
            entries = [(u, b) for u, b in entries if b in u.rows and u.rows[b].label_hash in wanted]
        for key, keep in (("edited_before", lambda a, b: a < b), ("edited_after", lambda a, b: a > b)):
            if payload.get(key) is not None:
                bound = datetime.fromisoformat(payload[key])
                bound = bound if bound.tzinfo else bound.replace(tzinfo=UTC)
                entries = [(u, b) for u, b in entries if b in u.rows and keep(u.rows[b].last_edited_at, bound)]
        if payload.get("label_statuses") is not None and "QUEUED" not in payload["label_statuses"]:
            entries = []  # the filter is on annotation task status, and every task here is QUEUED
        if not payload.get("include_uninitialised_labels"):
            entries = [(unit, branch) for unit, branch in entries if branch in unit.rows]
        images = bool(payload.get("include_images_data"))
        return [self._metadata(unit, branch, include_images_data=images) for unit, branch in entries]

    def _create(self, data_hashes: list[str], payload: Mapping[str, Any]) -> list[dict[str, Any]]:
        """New label rows on the branch the payload names (`main` when it names none), as the SDK asks for them
        when it initialises a row the listing showed without a label hash."""
        branch = payload.get("branch_name") or BRANCH
        if not isinstance(branch, str):
            raise _ApiError(400, f"branch_name must be a string, got {branch!r}")
        unknown = [data_hash for data_hash in data_hashes if data_hash not in self._units]
        if unknown:
            raise _ApiError(404, f"data units not found: {', '.join(unknown)}")
        existing = [h for h in data_hashes if branch in self._units[h].rows]
        if existing or len(set(data_hashes)) != len(data_hashes):
            raise _ApiError(
                409,
                f"label rows already exist on branch {branch!r} for data units: {', '.join(existing or data_hashes)}",
            )
        created = []
        for data_hash in data_hashes:
            unit = self._units[data_hash]
            now = _now()
            stored = _LabelRow(branch, str(uuid.uuid4()), now, now, {})
            stored.label_row = self._empty_label_row(unit, stored)
            unit.rows[branch] = stored
            self._by_label_hash[stored.label_hash] = (unit, stored)
            created.append(stored.label_row)
        return created

    def _empty_label_row(self, unit: _DataUnit, stored: _LabelRow) -> dict[str, Any]:
        data_units: dict[str, Any] = {}
        for data_hash, slot in unit.layout().items():
            data_unit: dict[str, Any] = {
                "data_hash": data_hash,
                "data_title": slot.title,
                "data_type": slot.file_type,  # a MIME type here, unlike the row's data_type
                "data_sequence": slot.data_sequence,
                "width": slot.width,
                "height": slot.height,
                "labels": {} if slot.frame is None else {"objects": [], "classifications": []},
            }
            if slot.data_link is not None:
                data_unit["data_link"] = slot.data_link
            if unit.fps:
                data_unit["data_fps"] = unit.fps
                data_unit["data_duration"] = unit.number_of_frames / unit.fps
            data_units[data_hash] = data_unit
        return {
            "label_hash": stored.label_hash,
            "branch_name": stored.branch,
            "created_at": _iso(stored.created_at),
            "last_edited_at": _iso(stored.last_edited_at),
            "data_hash": unit.data_hash,
            "dataset_hash": self.dataset_hash,
            "dataset_title": DATASET_TITLE,
            "data_title": unit.title,
            "data_type": unit.data_type,
            "label_status": stored.label_status,
            "annotation_task_status": "QUEUED",
            "is_shadow_data": False,
            "data_units": data_units,
            "object_answers": {},
            "classification_answers": {},
            "object_actions": {},
            "spaces": {},
        }

    def _stored(self, label_hashes: list[str]) -> list[tuple[_DataUnit, _LabelRow]]:
        unknown = [label_hash for label_hash in label_hashes if label_hash not in self._by_label_hash]
        if unknown:
            raise _ApiError(404, f"label rows not found: {', '.join(unknown)}")
        return [self._by_label_hash[label_hash] for label_hash in label_hashes]

    def _get(self, label_hashes: list[str], payload: Mapping[str, Any]) -> list[dict[str, Any] | None]:
        filters = [
            key
            for key in ("include_object_feature_hashes", "include_classification_feature_hashes")
            if payload.get(key) is not None
        ]
        if filters:
            # Reading a filtered row and saving it deletes what was filtered out; the importer must never do it.
            raise _ApiError(400, f"fake Encord does not support {', '.join(filters)}")
        # Stored rows are replaced on save, never changed in place, so they can be serialised after the lock.
        return [stored.label_row for _, stored in self._stored(label_hashes)]

    def _save(self, label_hashes: list[str], payload: Mapping[str, Any]) -> bool:
        rows = payload.get("labels")
        if not isinstance(rows, list) or len(rows) != len(label_hashes):
            raise _ApiError(400, f"payload.labels must be a list of {len(label_hashes)} label rows, one per uid")
        targets = self._stored(label_hashes)
        for position, ((unit, stored), row) in enumerate(zip(targets, rows, strict=True)):
            where = f"invalid label row {position} ({stored.label_hash}, {unit.title!r} on {stored.branch!r})"
            if unit.data_hash in self._refused:
                raise _ApiError(400, f"{where}: refused")
            try:
                _validate_label_row(row, unit, stored, self._index)
                self._sdk_reads(row, unit, stored.branch)
            except _Invalid as problem:
                raise _ApiError(400, f"{where}: {problem}") from None
        saved_at = _now()
        for (_, stored), row in zip(targets, rows, strict=True):
            stored.last_edited_at = saved_at
            stored.label_status = "LABEL_IN_PROGRESS"
            # The service owns these fields, whatever the client sent back.
            row.update(
                created_at=_iso(stored.created_at),
                last_edited_at=_iso(saved_at),
                label_status=stored.label_status,
            )
            stored.label_row = row
        return True

    def _move(self, label_hashes: list[str], stage: str) -> bool:
        """Complete or reopen the tasks of these label rows (a row of any branch names its data unit's task)."""
        for unit, _ in self._stored(label_hashes):
            unit.stage = stage
        return True

    def _sdk_reads(self, row: dict[str, Any], unit: _DataUnit, branch: str) -> None:
        """Parse the row with the SDK, as the next reader will; anything it raises makes the row invalid."""
        metadata = LabelRowMetadata.from_dict(self._metadata(unit, branch))
        label_row = LabelRowV2(metadata, None, self._sdk_ontology)  # type: ignore[arg-type]  # parsing needs no client
        try:
            label_row.from_labels_dict(_clone(row))
        except Exception as error:
            raise _Invalid(f"the encord SDK cannot read it: {type(error).__name__}: {error}") from error
