"""Answers to ontology attributes from the named values a format keeps beside a shape: VOC's `<difficult>`,
CVAT's `<attribute name="colour">` and `occluded="1"`.

The rules are one set for every format (docs/input-formats.md#the-mapping-option): a value answers the
attribute of the same title (ignoring case and runs of whitespace) on the ontology object, or the one the
mapping's `attributes` names; text as written; a radio option named by the value, or the one `options` maps it
to; a checklist gets the option named by the value. A flag (0/1, true/false) picks a radio's Yes/No option, and
ticks the checklist option named like the flag itself, so several flags can share one checklist ("Defects":
truncated, occluded).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from encord.objects import Object
from encord.objects.attributes import Attribute, ChecklistAttribute, RadioAttribute, TextAttribute

from label_importer.sources.mapping_option import MappingOption
from label_importer.sources.name_matching import folded

YES = ("yes", "true")
NO = ("no", "false")
TRUE = ("1", *YES)
FALSE = ("0", *NO)


@dataclass(frozen=True)
class NamedValue:
    name: str
    """What the format calls it (`difficult`, a CVAT attribute's name)."""
    value: str
    flag: bool
    """A 0/1 or true/false value: see the module's docstring."""


@dataclass
class Answers:
    by_title: dict[str, Any] = field(default_factory=dict)
    """Each answered attribute's label-format answer, by the attribute's title."""
    sources: dict[str, str] = field(default_factory=dict)
    """The name each answered attribute took its value from, to place a problem the checks find on it."""
    unplaced: list[str] = field(default_factory=list)
    """Names the ontology object has no attribute for."""


def is_flag(value: str) -> bool:
    return folded(value) in (*TRUE, *FALSE)


def titled(items: Iterable[Any], title: str) -> Any:
    """The item titled `title` ignoring case and runs of whitespace, or None."""
    return next((item for item in items if folded(item.title) == folded(title)), None)


def answers_for(ontology: Object, values: Iterable[NamedValue], option: MappingOption) -> Answers:
    mapped = {folded(name): title for name, title in option.attributes.items()}
    answers = Answers()
    for named in values:
        attribute = titled(ontology.attributes, mapped.get(folded(named.name)) or named.name)
        if attribute is None:
            answers.unplaced.append(named.name)
            continue
        answer = _answer(attribute, named, option.options)
        if answer is None:
            continue
        if isinstance(attribute, ChecklistAttribute) and attribute.title in answers.by_title:
            answers.by_title[attribute.title] = [*answers.by_title[attribute.title], *answer]
        else:
            answers.by_title[attribute.title] = answer
        answers.sources[attribute.title] = named.name
    return answers


def _answer(attribute: Attribute[Any], named: NamedValue, options: dict[str, str]) -> Any:
    value = named.value
    if isinstance(attribute, TextAttribute):
        return value
    if isinstance(attribute, ChecklistAttribute):
        if named.flag and folded(value) in FALSE:
            return None
        chosen = named.name if named.flag else value
        return [_option(attribute, [options.get(chosen, chosen)])]
    if isinstance(attribute, RadioAttribute):
        if value in options:
            return _option(attribute, [options[value]])
        alternatives = (YES if folded(value) in TRUE else NO if folded(value) in FALSE else ()) if named.flag else ()
        return _option(attribute, [value, *alternatives])
    return value  # another kind (numeric): the checks say whether the text fits


def _option(attribute: RadioAttribute | ChecklistAttribute, candidates: list[str]) -> str:
    """The option's exact title; the first candidate when none matches, for the checks to report."""
    for candidate in candidates:
        option = titled(attribute.options, candidate)
        if option is not None:
            return str(option.title)
    return candidates[0]
