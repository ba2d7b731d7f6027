"""One PNG mask as one record: its values tied to ontology objects, each object's pixels one Encord bitmask.

A mask says nothing of what its values mean, so the mapping's `objects` does, value by value (`"1"`,
`"#ff8000"`). How values become objects is the mapping's `masks`: `semantic`, a value is a class, so all the
pixels of the values that name one ontology object are one object in that image, however many separate regions
they form (a mask cannot tell two touching instances apart, so none are split); `instance`, each value is one
object. The background value (0, or #000000) is no object unless the mapping names it. Every object is a bitmask,
encoded with the SDK, so the pixels Encord stores are exactly the PNG's.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from encord.objects import Object, Shape

from label_importer.model.matching import Unmatched
from label_importer.model.problems import Problem, shown_value
from label_importer.model.source_items import LeftOut, Record, Rejected, SourceItem
from label_importer.sources.coco.geometry import encord_bitmask
from label_importer.sources.mapping_option import MaskKind
from label_importer.sources.png_masks.decoding import BACKGROUND, MaskValues

MAX_VALUE_PROBLEMS = 20
"""Unmapped values named one by one in a mask's problems; the rest are counted in one more."""
MASK_SHAPES = frozenset({Shape.BITMASK})
"""The only ontology shape a mask's pixels can be."""


def convert(
    number: int,
    entry: str,
    values: MaskValues,
    kind: MaskKind,
    mapped: dict[str, str | None],
    resolve: Callable[[str], Object | Unmatched | None],
    data_hash: str,
) -> SourceItem:
    """The image's record, or why there is none; `mapped` is the mapping's `objects`, `resolve(value)` the
    ontology object of a value as written, Unmatched, or None (left out by the mapping)."""
    groups: dict[str, tuple[Object, list[int]]] = {}
    problems: list[Problem] = []
    unmatched = 0
    left_out = False
    for code in values.values():
        written = values.written(code)
        if code == BACKGROUND and written not in mapped:
            continue
        found = resolve(written)
        if found is None:
            left_out = True
        elif isinstance(found, Unmatched):
            unmatched += 1
            if len(problems) < MAX_VALUE_PROBLEMS:  # a noisy image has a value per pixel: name a few, count the rest
                field = f"{entry}: value {written}"  # what is at fault: this value, in this mask
                problems.append(Problem(number, field, found.code, f"{entry}: {found.reason}", shown_value(written)))
        else:
            group = found.feature_node_hash if kind == "semantic" else written
            groups.setdefault(group, (found, []))[1].append(code)
    if unmatched > len(problems):
        more = unmatched - len(problems)
        message = f"{entry}: {more} more values name no object; map each in 'objects', or leave it out with null"
        problems.append(Problem(number, entry, problems[0].code, message))
    if problems:
        return Rejected(number, data_hash, problems)
    if not groups and left_out:
        return LeftOut(number)
    labels = [
        {"feature_hash": obj.feature_node_hash, "bitmask": encord_bitmask(values.mask(codes))}
        for obj, codes in groups.values()
    ]
    return Record(number, orjson.dumps({"data_hash": data_hash, "objects": labels}))
