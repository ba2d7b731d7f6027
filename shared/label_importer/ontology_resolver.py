"""Resolve the titles users write in label files into the project's ontology items.

The validator and the import function both go through this module: the validator to prove, before any
write, that every label means something in the ontology; the importer to get the SDK objects it needs.
One code path means a record that validated cannot be read differently at import time.

Titles in an Encord ontology need not be unique; a title that names two items is an error asking for the
feature hash, never a guess.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from encord.objects import Classification, Object, OntologyStructure
from encord.objects.attributes import Attribute, ChecklistAttribute, RadioAttribute, TextAttribute
from encord.objects.options import Option
from encord.objects.skeleton_template import SkeletonTemplate

from label_importer.label_format import (
    AttributeAnswer,
    ClassificationLabel,
    DynamicAnswer,
    NestedAnswer,
    ObjectLabel,
    RelationAnswer,
    frame_ranges,
)
from label_importer.problems import ErrorCode, did_you_mean

_Feature = TypeVar("_Feature", Object, Classification)

RELATION_SUFFIX = "#relation"
_SHAPES_REMEMBERED = 4096
"""Distinct label shapes whose resolution is kept; a file repeats a few shapes many times (same object, same
answers, other coordinates). Forgotten all at once when full, so memory stays flat on any file."""


def _shape(answer: AttributeAnswer) -> Hashable:
    """Everything about an answer that resolution depends on, hashable and tagged by kind."""
    if isinstance(answer, str):
        return ("text", answer)
    if isinstance(answer, list):
        return ("list", *(_shape(item) for item in answer))
    if isinstance(answer, NestedAnswer):
        return ("nested", answer.option, _attributes_shape(answer.attributes))
    if isinstance(answer, RelationAnswer):
        return ("relation", answer.relation_to)
    assert isinstance(answer, DynamicAnswer), answer  # the last member of the AttributeAnswer union
    return ("dynamic", _shape(answer.answer), tuple(frame_ranges(answer.frames)))


def _attributes_shape(attributes: dict[str, AttributeAnswer]) -> Hashable:
    return tuple((key, _shape(answer)) for key, answer in attributes.items())


@dataclass(frozen=True)
class RelationTarget:
    """A relation attribute's answer before import: the user `id` of another object in the data unit."""

    object_id: str


AnswerValue = str | Option | list[Option] | RelationTarget
"""What the SDK's `set_answer` takes (text, one radio option, or checklist options), or a relation target
that becomes the related object's hash once the data unit is known."""


def answer_key(value: AnswerValue | None) -> object:
    """What makes two answers the same answer: option identity, not the SDK objects carrying it."""
    if isinstance(value, Option):
        return value.feature_node_hash
    if isinstance(value, list):
        return frozenset(option.feature_node_hash for option in value)
    return value


@dataclass(frozen=True)
class ResolvedAnswer:
    attribute: Attribute
    value: AnswerValue
    frames: list[tuple[int, int]] | None = None
    """Inclusive frame ranges for a dynamic answer; None for a static one."""


@dataclass(frozen=True)
class ResolvedObject:
    label: ObjectLabel
    ontology: Object
    answers: list[ResolvedAnswer]


@dataclass(frozen=True)
class ResolvedClassification:
    label: ClassificationLabel
    ontology: Classification
    answers: list[ResolvedAnswer]


@dataclass(frozen=True)
class LabelIssue:
    """A resolution problem, located relative to the label being resolved."""

    field: str
    code: ErrorCode
    message: str


class UnresolvedLabel(Exception):
    """Raised with every problem found in one label, so the report lists them all at once."""

    def __init__(self, problems: Sequence[LabelIssue]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = list(problems)


@dataclass
class _Collector:
    problems: list[LabelIssue] = field(default_factory=list)

    def add(self, path: str, code: ErrorCode, message: str) -> None:
        self.problems.append(LabelIssue(path, code, message))


def _titles(items: Sequence[Object | Classification | Attribute | Option]) -> str:
    return ", ".join(repr(item.title) for item in items) or "none"


_Child = TypeVar("_Child", Attribute, Option)


def _one_of(
    items: Sequence[_Child], key: str, path: str, owner: str, kind: str, unknown: ErrorCode, errors: _Collector
) -> _Child | None:
    """The item titled `key`, or whose feature hash is `key`: a title two siblings share needs the hash."""
    matches = [item for item in items if item.title == key] or [item for item in items if item.feature_node_hash == key]
    if len(matches) == 1:
        return matches[0]
    if matches:
        hashes = ", ".join(item.feature_node_hash for item in matches)
        errors.add(
            path,
            ErrorCode.AMBIGUOUS_TITLE,
            f"{owner!r} has {len(matches)} {kind}s titled {key!r}; give the feature hash instead (one of {hashes})",
        )
    else:
        errors.add(
            path,
            unknown,
            f"{owner!r} has no {kind} {key!r}{did_you_mean(key, [item.title for item in items])}; "
            f"expected one of {_titles(items)}",
        )
    return None


class OntologyResolver:
    """Indexes an ontology once per file (or per warm container) so each lookup is a dict access."""

    def __init__(self, structure: OntologyStructure) -> None:
        self.structure = structure
        self._objects: dict[str, list[Object]] = defaultdict(list)
        self._classifications: dict[str, list[Classification]] = defaultdict(list)
        for obj in structure.objects:
            self._objects[obj.title].append(obj)
        for classification in structure.classifications:
            self._classifications[classification.title].append(classification)
        self._by_hash = {item.feature_node_hash: item for item in [*structure.objects, *structure.classifications]}
        self._resolved: dict[Hashable, tuple[Any, list[ResolvedAnswer]]] = {}

    def resolve_object(self, label: ObjectLabel) -> ResolvedObject:
        """The label's ontology object and answers; raises UnresolvedLabel with every problem found."""
        shape = (
            "object",
            label.name,
            label.feature_hash,
            label.geometry_field,
            tuple(label.skeleton) if label.skeleton is not None else None,
            _attributes_shape(label.attributes),
        )
        if (known := self._resolved.get(shape)) is not None:
            return ResolvedObject(label, *known)
        resolved = self._resolve_object(label)
        self._remember(shape, (resolved.ontology, resolved.answers))
        return resolved

    def resolve_classification(self, label: ClassificationLabel) -> ResolvedClassification:
        shape = ("classification", label.name, label.feature_hash, _shape(label.answer))
        if (known := self._resolved.get(shape)) is not None:
            return ResolvedClassification(label, *known)
        resolved = self._resolve_classification(label)
        self._remember(shape, (resolved.ontology, resolved.answers))
        return resolved

    def _remember(self, shape: Hashable, resolution: tuple[Any, list[ResolvedAnswer]]) -> None:
        if len(self._resolved) >= _SHAPES_REMEMBERED:
            self._resolved.clear()
        self._resolved[shape] = resolution

    def _resolve_object(self, label: ObjectLabel) -> ResolvedObject:
        errors = _Collector()
        ontology = self._find(label.name, label.feature_hash, Object, self._objects, errors)
        if ontology is None:
            raise UnresolvedLabel(errors.problems)
        if ontology.shape.value != label.geometry_field:
            errors.add(
                label.geometry_field,
                ErrorCode.SHAPE_MISMATCH,
                f"{ontology.title!r} is a {ontology.shape.value} in the ontology; "
                f"give '{ontology.shape.value}' instead of '{label.geometry_field}'",
            )
        if label.skeleton is not None:
            template = self.skeleton_template(ontology)
            expected = {vertex.name for vertex in template.skeleton.values()}
            if set(label.skeleton) != expected:
                errors.add(
                    "skeleton",
                    ErrorCode.SKELETON_POINTS_MISMATCH,
                    f"skeleton {template.name!r} has points {sorted(expected)}; got {sorted(label.skeleton)}",
                )
        answers = self._resolve_attributes(
            ontology.title, ontology.attributes, label.attributes, "attributes", errors, allow_dynamic=True
        )
        if errors.problems:
            raise UnresolvedLabel(errors.problems)
        return ResolvedObject(label, ontology, answers)

    def _resolve_classification(self, label: ClassificationLabel) -> ResolvedClassification:
        errors = _Collector()
        ontology = self._find(label.name, label.feature_hash, Classification, self._classifications, errors)
        if ontology is None:
            raise UnresolvedLabel(errors.problems)
        question = ontology.attributes[0]
        answers = self._resolve_answer(question, label.answer, "answer", errors, allow_dynamic=False)
        if errors.problems:
            raise UnresolvedLabel(errors.problems)
        return ResolvedClassification(label, ontology, answers)

    def skeleton_template(self, ontology: Object) -> SkeletonTemplate:
        """The template whose feature hash is the skeleton object's (that is how Encord links them)."""
        return next(
            template
            for template in self.structure.skeleton_templates.values()
            if template.feature_node_hash == ontology.feature_node_hash
        )

    def _find(
        self,
        title: str | None,
        feature_hash: str | None,
        kind: type[_Feature],
        by_title: dict[str, list[_Feature]],
        errors: _Collector,
    ) -> _Feature | None:
        noun = "object" if kind is Object else "classification"
        unknown = ErrorCode.UNKNOWN_OBJECT if kind is Object else ErrorCode.UNKNOWN_CLASSIFICATION
        if feature_hash is not None:
            item = self._by_hash.get(feature_hash)
            if isinstance(item, kind):
                return item
            errors.add("feature_hash", unknown, f"no ontology {noun} has feature hash {feature_hash!r}")
            return None
        assert title is not None  # the model requires one of the two
        candidates = by_title.get(title, [])
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            hashes = ", ".join(item.feature_node_hash for item in candidates)
            errors.add(
                "name",
                ErrorCode.AMBIGUOUS_TITLE,
                f"{len(candidates)} ontology {noun}s are titled {title!r}; use 'feature_hash' (one of {hashes})",
            )
            return None
        known = [items[0] for items in by_title.values()]
        errors.add(
            "name",
            unknown,
            f"no ontology {noun} titled {title!r}{did_you_mean(title, by_title)}; the ontology has {_titles(known)}",
        )
        return None

    def _resolve_attributes(
        self,
        owner: str,
        attributes: Sequence[Attribute],
        given: dict[str, AttributeAnswer],
        path: str,
        errors: _Collector,
        allow_dynamic: bool,
    ) -> list[ResolvedAnswer]:
        answers: list[ResolvedAnswer] = []
        for key, answer in given.items():
            here = f"{path}.{key}"
            attribute = _one_of(attributes, key, here, owner, "attribute", ErrorCode.UNKNOWN_ATTRIBUTE, errors)
            if attribute is not None:
                answers.extend(self._resolve_answer(attribute, answer, here, errors, allow_dynamic))
        return answers

    def _resolve_answer(
        self,
        attribute: Attribute,
        answer: AttributeAnswer,
        path: str,
        errors: _Collector,
        allow_dynamic: bool,
        frames: list[tuple[int, int]] | None = None,
    ) -> list[ResolvedAnswer]:
        if isinstance(answer, list) and answer and isinstance(answer[0], DynamicAnswer):
            if not (allow_dynamic and attribute.dynamic):
                errors.add(
                    path,
                    ErrorCode.DYNAMIC_NOT_ALLOWED,
                    f"{attribute.title!r} is not a dynamic attribute: give one answer, not per-frame answers",
                )
                return []
            resolved = []
            for index, dynamic in enumerate(answer):
                assert isinstance(dynamic, DynamicAnswer)
                resolved.extend(
                    self._resolve_answer(
                        attribute,
                        dynamic.answer,
                        f"{path}[{index}].answer",
                        errors,
                        allow_dynamic=False,
                        frames=frame_ranges(dynamic.frames),
                    )
                )
            return resolved
        if isinstance(attribute, TextAttribute):
            if isinstance(answer, str):
                return [ResolvedAnswer(attribute, answer, frames)]
            if isinstance(answer, RelationAnswer) and attribute.title.endswith(RELATION_SUFFIX):
                return [ResolvedAnswer(attribute, RelationTarget(answer.relation_to), frames)]
            expected = "a text or {relation_to: <object id>}" if attribute.title.endswith(RELATION_SUFFIX) else "a text"
            return self._wrong_answer(attribute, expected, path, errors)
        if isinstance(attribute, ChecklistAttribute):
            if not (isinstance(answer, list) and all(isinstance(item, str) for item in answer)):
                return self._wrong_answer(attribute, "a list of option titles", path, errors)
            options = [self._option(attribute, str(title), f"{path}[{i}]", errors) for i, title in enumerate(answer)]
            chosen = [option for option in options if option is not None]
            return [ResolvedAnswer(attribute, chosen, frames)] if len(chosen) == len(options) else []
        if isinstance(attribute, RadioAttribute):
            nested = answer if isinstance(answer, NestedAnswer) else None
            title = nested.option if nested else answer
            if not isinstance(title, str):
                return self._wrong_answer(attribute, "an option title or {option, attributes}", path, errors)
            option = self._option(attribute, title, path, errors)
            if option is None:
                return []
            resolved = [ResolvedAnswer(attribute, option, frames)]
            if nested and nested.attributes:
                resolved.extend(
                    self._resolve_attributes(
                        option.title, option.attributes, nested.attributes, f"{path}.attributes", errors, False
                    )
                )
            return resolved
        errors.add(
            path,
            ErrorCode.WRONG_ANSWER_TYPE,
            f"{attribute.title!r} is a {type(attribute).__name__}, which label files cannot answer yet",
        )
        return []

    def _option(self, attribute: Attribute, key: str, path: str, errors: _Collector) -> Option | None:
        return _one_of(attribute.options, key, path, attribute.title, "option", ErrorCode.UNKNOWN_OPTION, errors)

    @staticmethod
    def _wrong_answer(attribute: Attribute, expected: str, path: str, errors: _Collector) -> list[ResolvedAnswer]:
        kind = type(attribute).__name__.removesuffix("Attribute").lower()
        errors.add(path, ErrorCode.WRONG_ANSWER_TYPE, f"{attribute.title!r} is a {kind} attribute: expected {expected}")
        return []
