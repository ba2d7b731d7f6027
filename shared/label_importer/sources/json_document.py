"""What every source of one JSON document shares: which keys are JSON documents, a byte-order mark, and how a
parse error is said."""

from __future__ import annotations

import ijson

from label_importer.sources.bounded_reading import ByteStream

_BOM = b"\xef\xbb\xbf"


def is_json_document(key: str) -> bool:
    """`.json` (or `.json.gz`): one JSON document, a COCO object or an Encord export's list."""
    return key.lower().removesuffix(".gz").endswith(".json")


def invalid_json(error: ijson.JSONError) -> str:
    """The parser's message is three lines drawing an arrow; one line with the text it stopped at reads better."""
    first, *rest = str(error).splitlines() or [""]
    near = rest[0].strip() if rest else ""
    message = f"the file is not valid JSON: {first}" + (f" near {near!r}" if near else "")
    if "trailing garbage" in first:  # one JSON value, then more: JSON Lines saved under a .json name
        message += "; a JSON Lines file (one record per line) must be named .jsonl"
    return message


class without_bom:
    """Editors on Windows start JSON files with a UTF-8 byte-order mark; the JSON parser refuses it."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream
        self._first = True

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if self._first and data:  # the parser first reads 0 bytes to tell bytes from text
            self._first = False
            if data.startswith(_BOM):
                data = data[len(_BOM) :] or self._stream.read(size)
        return data
