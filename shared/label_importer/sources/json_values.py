"""Reading one untrusted JSON element of a label file (an Encord export's label row, a Labelbox data row): each
value checked for the JSON type it must have, and every misfit said at its path inside the element
(`[3].object_answers.<hash>`, `projects.<id>.labels[0].annotations.objects[2].bounding_box`)."""

from __future__ import annotations

import math
from typing import Any

from label_importer.model.problems import ErrorCode


class Misfit(Exception):
    """Part of an element that cannot become a label record: rejects the element, located at `where`."""

    def __init__(self, where: str, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.code = code
        self.message = message


def mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Misfit(where, ErrorCode.WRONG_TYPE, f"expected a JSON object, not {kind(value)}")
    return value


def sequence(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise Misfit(where, ErrorCode.WRONG_TYPE, f"expected a list, not {kind(value)}")
    return value


def text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise Misfit(where, ErrorCode.WRONG_TYPE if value is not None else ErrorCode.MISSING_FIELD, "expected a text")
    return value


def number(value: Any, where: str) -> float:
    """A finite JSON number (true and false are not numbers, though Python counts them as such)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        code = ErrorCode.MISSING_FIELD if value is None else ErrorCode.WRONG_TYPE
        raise Misfit(where, code, f"expected a number, not {kind(value)}")
    if not math.isfinite(value):
        raise Misfit(where, ErrorCode.OUT_OF_RANGE, f"{value!r} is not a finite number")
    return float(value)


def kind(value: Any) -> str:
    if value is None:
        return "nothing (missing or null)"
    return {dict: "an object", list: "a list", str: "a text", bool: "true or false"}.get(type(value), repr(value))
