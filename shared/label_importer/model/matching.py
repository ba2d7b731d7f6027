"""Picking exactly one item by the name a file gives it: a data unit, an ontology object or classification, an
attribute or an option.

Every format names things by title (or file name, or category name) where a title may be shared, and by hash
where it must be exact; each lookup decides its own candidates, and this is the one place that decides what
none, one or several of them mean, and how a person is told. Suggestions (a did-you-mean over every title) are
worked out only when the match fails: over thousands of data units they are the costly part.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from label_importer.model.problems import ErrorCode

_Item = TypeVar("_Item")


@dataclass(frozen=True)
class Unmatched:
    """Why a name picks out no item or several; whatever depends on the name repeats it, located on itself."""

    code: ErrorCode
    reason: str
    field: str = ""
    """The field at fault, when it is not the one that holds the name."""


@dataclass(frozen=True)
class Lookup:
    """Where names are looked up, in the words of the messages: `the ontology has no object titled 'car'`."""

    owner: str
    """Who holds the items: `the project`, `the ontology`, `'Car'` (an object with attributes)."""
    noun: str
    unknown: ErrorCode
    ambiguous: ErrorCode
    choose: str
    """How to pick one of several: `use 'data_hash'`, `map it to one feature hash in 'categories'`."""


def exactly_one(
    candidates: Sequence[_Item],
    lookup: Lookup,
    named: str,
    describe: Callable[[_Item], str],
    suggest: Callable[[], str] = lambda: "",
) -> _Item | Unmatched:
    """The one candidate, or why there is not exactly one.

    `named` says how the file named it (`titled 'car'`, `for file_name 'a.jpg'`); `describe` tells candidates
    apart (by hash); `suggest` is appended when nothing matched (a did-you-mean, the valid titles, a fix).
    """
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        found = ", ".join(map(describe, candidates))
        return Unmatched(
            lookup.ambiguous,
            f"{lookup.owner} has {len(candidates)} {lookup.noun}s {named}: {found}; {lookup.choose}",
        )
    return Unmatched(lookup.unknown, f"{lookup.owner} has no {lookup.noun} {named}{suggest()}")
