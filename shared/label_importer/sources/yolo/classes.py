"""The class list of a YOLO archive: `data.yaml` (Ultralytics) or `classes.txt` (darknet, labelImg), read once.

A label line names its class by number only, so without this list nothing in the archive can be matched to the
ontology: a missing or unreadable list rejects the archive before any line is read. `data.yaml` is read with
`yaml.safe_load` (no tags, so no code), bounded in bytes before it is parsed; only `names` and `kpt_shape` are
looked at. When an archive holds several lists, the one nearest the root is used (an export's `data.yaml` beside
`labels/`), and `data.yaml` before `classes.txt`.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

import yaml

from label_importer.model.problems import ErrorCode, Problem, shown_value

CLASS_FILES = ("data.yaml", "data.yml", "classes.txt")
"""The names a class list has, in the order one is preferred to another in the same folder."""


@dataclass(frozen=True)
class ClassList:
    entry: str
    """The archive entry the list came from (`data.yaml`, `dataset/classes.txt`)."""
    names: dict[int, str]
    keypoints: tuple[int, int] | None = None
    """`kpt_shape` ([K, 2] or [K, 3]): keypoints per pose line, and numbers per keypoint; None when not given."""


def class_entry(names: list[str]) -> str | None:
    """The class list to read: nearest the root, then `data.yaml` before `classes.txt`; None if there is none."""
    found = [name for name in names if posixpath.basename(name).lower() in CLASS_FILES]
    if not found:
        return None
    return min(found, key=lambda name: (name.count("/"), CLASS_FILES.index(posixpath.basename(name).lower()), name))


def read_class_list(entry: str, data: bytes) -> ClassList:
    """The list in `data` (the bytes of `entry`); raises ClassListRefused saying what is wrong with it."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _refused(entry, ErrorCode.NOT_UTF8, "is not UTF-8 text") from None
    if entry.lower().endswith(".txt"):
        lines = text.splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        names = {index: line.strip() for index, line in enumerate(lines)}
        blank = next((index for index, name in names.items() if not name), None)
        if blank is not None:
            raise _refused(entry, ErrorCode.INVALID_VALUE, f"line {blank + 1} is blank; each line names one class")
        if not names:
            raise _refused(entry, ErrorCode.EMPTY_FILE, "names no class; it holds one class name per line")
        return ClassList(entry, names)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise _refused(entry, ErrorCode.INVALID_VALUE, f"is not YAML ({error})".replace("\n", " ")) from None
    if not isinstance(document, dict) or "names" not in document:
        raise _refused(entry, ErrorCode.MISSING_FIELD, "has no 'names': the class names, as a list or {id: name}")
    return ClassList(entry, _names(entry, document["names"]), _keypoints(entry, document.get("kpt_shape")))


class ClassListRefused(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _refused(entry: str, code: ErrorCode, message: str, field: str = "", value: Any = None) -> ClassListRefused:
    where = f"{entry}.{field}" if field else entry
    return ClassListRefused(Problem(0, where, code, f"{entry} {message}", shown_value(value)))


def _names(entry: str, names: Any) -> dict[int, str]:
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names:
        raise _refused(entry, ErrorCode.WRONG_TYPE, "'names' is a list of class names or {id: name}", "names", names)
    checked: dict[int, str] = {}
    for key, name in names.items():
        if isinstance(key, bool) or not isinstance(key, int) or key < 0:
            raise _refused(entry, ErrorCode.WRONG_TYPE, f"class id {key!r} is not a whole number", "names", key)
        if not isinstance(name, str | int | float) or isinstance(name, bool) or not str(name).strip():
            raise _refused(entry, ErrorCode.WRONG_TYPE, f"class {key} has no name", f"names.{key}", name)
        checked[key] = str(name).strip()
    return checked


def _keypoints(entry: str, shape: Any) -> tuple[int, int] | None:
    if shape is None:
        return None
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(number, int) and not isinstance(number, bool) for number in shape)
        or shape[0] < 1
        or shape[1] not in (2, 3)
    ):
        raise _refused(
            entry,
            ErrorCode.INVALID_VALUE,
            "'kpt_shape' is [keypoints, 2 or 3] (x, y and, with 3, visibility per keypoint)",
            "kpt_shape",
            shape,
        )
    return shape[0], shape[1]
