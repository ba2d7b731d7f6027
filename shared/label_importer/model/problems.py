"""What can be wrong with a label file, said so a person can fix it: stable codes, field paths, messages.

Codes are part of the public contract (documented in docs/operations.md, matched by users' scripts); messages
may improve over time. Every problem names the line and the field, so a report of a 10 GB file still
points at the exact spot.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import pydantic_core

from label_importer.model.label_format import FIELD_NAMES, UNION_TAGS


class ErrorCode(StrEnum):
    # The file as a whole
    EMPTY_FILE = "EMPTY_FILE"
    NOT_UTF8 = "NOT_UTF8"
    INVALID_GZIP = "INVALID_GZIP"
    INVALID_JSON = "INVALID_JSON"
    MISSING_PROJECT = "MISSING_PROJECT"
    PROJECT_MISMATCH = "PROJECT_MISMATCH"
    UNKNOWN_PROJECT = "UNKNOWN_PROJECT"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    COMPRESSION_RATIO_TOO_HIGH = "COMPRESSION_RATIO_TOO_HIGH"
    ITEM_TOO_LARGE = "ITEM_TOO_LARGE"
    TOO_MANY_RECORDS = "TOO_MANY_RECORDS"
    TOO_MANY_IMAGES = "TOO_MANY_IMAGES"
    TOO_MANY_CATEGORIES = "TOO_MANY_CATEGORIES"
    # Archives and XML documents
    INVALID_ARCHIVE = "INVALID_ARCHIVE"
    UNSAFE_ARCHIVE_ENTRY = "UNSAFE_ARCHIVE_ENTRY"
    TOO_MANY_ENTRIES = "TOO_MANY_ENTRIES"
    INVALID_XML = "INVALID_XML"
    UNSAFE_XML = "UNSAFE_XML"
    UNKNOWN_FORMAT = "UNKNOWN_FORMAT"
    # Shape of one record
    LINE_TOO_LONG = "LINE_TOO_LONG"
    NESTING_TOO_DEEP = "NESTING_TOO_DEEP"
    TOO_MANY_POINTS = "TOO_MANY_POINTS"
    BITMASK_TOO_LARGE = "BITMASK_TOO_LARGE"
    TOO_MANY_OBJECTS = "TOO_MANY_OBJECTS"
    DATA_UNIT_TOO_LARGE = "DATA_UNIT_TOO_LARGE"
    UNKNOWN_FIELD = "UNKNOWN_FIELD"
    MISSING_FIELD = "MISSING_FIELD"
    WRONG_TYPE = "WRONG_TYPE"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    INVALID_VALUE = "INVALID_VALUE"
    # Against the project's data units
    UNKNOWN_DATA_UNIT = "UNKNOWN_DATA_UNIT"
    AMBIGUOUS_DATA_TITLE = "AMBIGUOUS_DATA_TITLE"
    FRAME_OUT_OF_RANGE = "FRAME_OUT_OF_RANGE"
    BITMASK_SIZE_MISMATCH = "BITMASK_SIZE_MISMATCH"
    # Against the project's ontology
    UNKNOWN_OBJECT = "UNKNOWN_OBJECT"
    UNKNOWN_CLASSIFICATION = "UNKNOWN_CLASSIFICATION"
    AMBIGUOUS_TITLE = "AMBIGUOUS_TITLE"
    SHAPE_MISMATCH = "SHAPE_MISMATCH"
    UNKNOWN_ATTRIBUTE = "UNKNOWN_ATTRIBUTE"
    UNKNOWN_OPTION = "UNKNOWN_OPTION"
    WRONG_ANSWER_TYPE = "WRONG_ANSWER_TYPE"
    DYNAMIC_NOT_ALLOWED = "DYNAMIC_NOT_ALLOWED"
    SKELETON_POINTS_MISMATCH = "SKELETON_POINTS_MISMATCH"
    CONFLICTING_LABELS = "CONFLICTING_LABELS"
    UNKNOWN_OBJECT_ID = "UNKNOWN_OBJECT_ID"
    # The ontology has a skeleton object without a skeleton template: its points have nothing to attach to.
    NO_SKELETON_TEMPLATE = "NO_SKELETON_TEMPLATE"
    # The SDK refuses any answer to this attribute: it is nested under a dynamic attribute, or marked dynamic
    # where Encord takes no dynamic answers (nested, or in a classification), or the classification has no question.
    UNANSWERABLE_ATTRIBUTE = "UNANSWERABLE_ATTRIBUTE"
    # A dynamic answer on a frame where its object has no coordinates (no line of its id places it there).
    FRAME_WITHOUT_OBJECT = "FRAME_WITHOUT_OBJECT"
    # COCO files
    NOT_COCO = "NOT_COCO"
    DUPLICATE_ID = "DUPLICATE_ID"
    UNKNOWN_REFERENCE = "UNKNOWN_REFERENCE"
    IMAGE_SIZE_MISMATCH = "IMAGE_SIZE_MISMATCH"
    NOT_AN_IMAGE = "NOT_AN_IMAGE"
    # The system could not process the file (the job is FAILED, not REJECTED: the file may be fine)
    OBJECT_UNAVAILABLE = "OBJECT_UNAVAILABLE"
    ENCORD_KEY_UNUSABLE = "ENCORD_KEY_UNUSABLE"
    ENCORD_UNAVAILABLE = "ENCORD_UNAVAILABLE"
    OUT_OF_TIME = "OUT_OF_TIME"
    VALIDATOR_STOPPED = "VALIDATOR_STOPPED"
    INTERNAL_ERROR = "INTERNAL_ERROR"


FILE_LEVEL_CODES = frozenset(
    {
        ErrorCode.EMPTY_FILE,
        ErrorCode.INVALID_GZIP,
        ErrorCode.FILE_TOO_LARGE,
        ErrorCode.COMPRESSION_RATIO_TOO_HIGH,
        ErrorCode.ITEM_TOO_LARGE,
        ErrorCode.TOO_MANY_RECORDS,
        ErrorCode.TOO_MANY_IMAGES,
        ErrorCode.TOO_MANY_CATEGORIES,
        ErrorCode.INVALID_ARCHIVE,
        ErrorCode.UNSAFE_ARCHIVE_ENTRY,
        ErrorCode.TOO_MANY_ENTRIES,
        ErrorCode.UNSAFE_XML,
    }
)
"""Problems of the file as a whole: always listed first in a report, never crowded out by record problems."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one line. `line` is 1-based; 0 means the file as a whole."""

    line: int
    field: str
    code: ErrorCode
    message: str
    value: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


MAX_VALUE_CHARS = 120
"""Offending values are echoed back, truncated: enough to recognise, never a whole payload."""


def shown_value(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def did_you_mean(given: str, known: Iterable[str]) -> str:
    """`; did you mean 'bounding_box'?` for a near miss, else a pointer to the list of valid names."""
    by_folded = {name.casefold(): name for name in known}
    close = difflib.get_close_matches(given.casefold(), by_folded, n=1, cutoff=0.6)
    return f"; did you mean {by_folded[close[0]]!r}?" if close else ""


def field_path(location: Iterable[str | int]) -> str:
    """`('objects', 0, 'bounding_box', 'x')` -> `objects[0].bounding_box.x`, without union tags."""
    path = ""
    for part in location:
        if part in UNION_TAGS:
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


_CODE_BY_PYDANTIC_TYPE = {
    "json_invalid": ErrorCode.INVALID_JSON,
    "json_type": ErrorCode.INVALID_JSON,
    "extra_forbidden": ErrorCode.UNKNOWN_FIELD,
    "missing": ErrorCode.MISSING_FIELD,
    "greater_than": ErrorCode.OUT_OF_RANGE,
    "greater_than_equal": ErrorCode.OUT_OF_RANGE,
    "less_than": ErrorCode.OUT_OF_RANGE,
    "less_than_equal": ErrorCode.OUT_OF_RANGE,
    "finite_number": ErrorCode.OUT_OF_RANGE,
    "too_short": ErrorCode.INVALID_VALUE,
    "too_long": ErrorCode.INVALID_VALUE,
    "string_too_short": ErrorCode.INVALID_VALUE,
    "string_too_long": ErrorCode.INVALID_VALUE,
    "string_pattern_mismatch": ErrorCode.INVALID_VALUE,
    "literal_error": ErrorCode.INVALID_VALUE,
    "enum": ErrorCode.INVALID_VALUE,
    "value_error": ErrorCode.INVALID_VALUE,
}


def problems_from_pydantic(
    line: int, errors: Sequence[pydantic_core.ErrorDetails], *, prefix: str = "", known: Iterable[str] = FIELD_NAMES
) -> list[Problem]:
    """Translate pydantic's errors into ours: stable codes, readable paths (under `prefix`), no library jargon.
    A misspelt field is compared with the `known` field names."""
    problems = []
    for error in errors:
        code = _CODE_BY_PYDANTIC_TYPE.get(error["type"], ErrorCode.WRONG_TYPE)
        message = error["msg"].removeprefix("Value error, ")
        if code is ErrorCode.UNKNOWN_FIELD:
            message = "unknown field" + did_you_mean(str(error["loc"][-1]), known)
        value = None if code in (ErrorCode.MISSING_FIELD, ErrorCode.INVALID_JSON) else error.get("input")
        path = field_path(error["loc"])
        located = f"{prefix}.{path}" if prefix and path and not path.startswith("[") else prefix + path
        problems.append(Problem(line, located, code, message, shown_value(value)))
    return problems
