"""Resolve the titles users write in label files into the project's ontology items.

The validator and the import function both go through this module: the validator to prove, before any
write, that every label means something in the ontology; the importer to get the SDK objects it needs.
One code path means a record that validated cannot be read differently at import time.

Titles in an Encord ontology need not be unique; a title that names two items is an error asking for the
feature hash, never a guess.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from encord.objects import Classification, Object, OntologyStructure
from encord.objects.attributes import Attribute, ChecklistAttribute, RadioAttribute, TextAttribute
from encord.objects.options import Option
from encord.objects.skeleton_template import SkeletonTemplate

from label_importer.model.label_format import (
    GEOMETRY_FIELDS,
    AttributeAnswer,
    ClassificationLabel,
    DynamicAnswer,
    NestedAnswer,
    ObjectLabel,
    RelationAnswer,
    frame_ranges,
)
from label_importer.model.matching import Lookup, Unmatched, exactly_one
from label_importer.model.problems import ErrorCode, did_you_mean
from label_importer.model.project import skeleton_template_of

_Feature = TypeVar("_Feature", Object, Classification)

RELATION_SUFFIX = "#relation"
_SHAPES_REMEMBERED = 4096
"""Distinct label shapes whose resolution is kept; a file repeats a few shapes many times (same object, same
answers, other coordinates). Forgotten all at once when full, so memory stays flat on any file."""


def _shape(answer: AttributeAnswer | DynamicAnswer) -> Hashable:
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


def answers_key(answers: Iterable[tuple[Attribute[Any], Any]]) -> frozenset[tuple[str, object]]:
    """What makes two labels' answers the same, as the SDK stores them: the last answer to an attribute wins,
    and an empty checklist is no answer (Encord reads it back unanswered). The validator's conflict check and
    the importer's "already there" check both use this, so they agree on what a different answer is."""
    final = {attribute.feature_node_hash: answer_key(value) for attribute, value in answers}
    return frozenset((feature_hash, key) for feature_hash, key in final.items() if key != frozenset())


@dataclass(frozen=True)
class ResolvedAnswer:
    attribute: Attribute[Any]
    value: AnswerValue
    frames: list[tuple[int, int]] | None = None
    """Inclusive frame ranges for a dynamic answer; None for a static one."""
    frames_field: str | None = None
    """Where a dynamic answer's frames are in the label (`attributes.Position[1].frames`), so a check of those
    frames against the object's own (which needs the data unit, or other lines) can point at them."""
    field: str = ""
    """Where the answer is in the label (`attributes.Colour.attributes.Any Other Colours?`), as the file spells it."""


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


def _titles(items: Sequence[Object | Classification | Attribute[Any] | Option]) -> str:
    return ", ".join(repr(item.title) for item in items) or "none"


_Child = TypeVar("_Child", Attribute[Any], Option)
_Named = TypeVar("_Named", Object, Classification, Attribute[Any], Option)


def _one_of(
    items: Sequence[_Child], key: str, path: str, owner: str, kind: str, unknown: ErrorCode, errors: _Collector
) -> _Child | None:
    """The item titled `key`, or whose feature hash is `key`: a title two siblings share needs the hash."""
    matches = [item for item in items if item.title == key] or [item for item in items if item.feature_node_hash == key]
    lookup = Lookup(f"{owner!r}", kind, unknown, ErrorCode.AMBIGUOUS_TITLE, "give the feature hash instead")
    return _matched(matches, lookup, key, items, path, errors)


def _matched(
    candidates: Sequence[_Named],
    lookup: Lookup,
    title: str,
    siblings: Sequence[_Named],
    path: str,
    errors: _Collector,
) -> _Named | None:
    """One of `candidates`, or None with the problem added; suggestions are drawn from `siblings`."""

    def suggest() -> str:
        return f"{did_you_mean(title, (item.title for item in siblings))}; expected one of {_titles(siblings)}"

    found = exactly_one(candidates, lookup, f"titled {title!r}", lambda item: item.feature_node_hash, suggest)
    if isinstance(found, Unmatched):
        errors.add(path, found.code, found.reason)
        return None
    return found


class OntologyResolver:
    """Indexes an ontology once per file (or per warm container) so each lookup is a dict access."""

    def __init__(self, structure: OntologyStructure) -> None:
        self.structure = structure
        self._objects: dict[str, list[Object]] = defaultdict(list)
        self._classifications: dict[str, list[Classification]] = defaultdict(list)
        for obj in structure.objects:
            self._objects[obj.title].append(obj)
        for classification in structure.classifications:
            if classification.attributes:  # the title is the question's; one without can only be named by hash
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
            instead = (
                f"give '{ontology.shape.value}' instead of '{label.geometry_field}'"
                if ontology.shape.value in GEOMETRY_FIELDS
                else "label files cannot place objects of that shape"
            )
            errors.add(
                label.geometry_field,
                ErrorCode.SHAPE_MISMATCH,
                f"{ontology.title!r} is a {ontology.shape.value} in the ontology; {instead}",
            )
        elif label.skeleton is not None:
            self._check_skeleton(ontology, label.skeleton, errors)
        answers = self._resolve_attributes(
            ontology.title, ontology.attributes, label.attributes, "attributes", errors, allow_dynamic=True
        )
        if errors.problems:
            raise UnresolvedLabel(errors.problems)
        return ResolvedObject(label, ontology, answers)

    def _check_skeleton(self, ontology: Object, points: dict[str, Any], errors: _Collector) -> None:
        """The points must be the template's: the SDK ties each point to a template vertex, and an object whose
        template the ontology lacks cannot be placed at all (Encord renders a skeleton from its template)."""
        template = skeleton_template_of(self.structure, ontology)
        if template is None:
            errors.add("skeleton", ErrorCode.NO_SKELETON_TEMPLATE, _no_template(ontology))
            return
        expected = {vertex.name for vertex in template.skeleton.values()}
        if set(points) != expected:
            errors.add(
                "skeleton",
                ErrorCode.SKELETON_POINTS_MISMATCH,
                f"skeleton {template.name!r} has points {sorted(expected)}; got {sorted(points)}",
            )

    def _resolve_classification(self, label: ClassificationLabel) -> ResolvedClassification:
        errors = _Collector()
        ontology = self._find(label.name, label.feature_hash, Classification, self._classifications, errors)
        if ontology is None:
            raise UnresolvedLabel(errors.problems)
        if not ontology.attributes:
            errors.add(
                "feature_hash" if label.feature_hash is not None else "name",
                ErrorCode.UNANSWERABLE_ATTRIBUTE,
                f"ontology classification {ontology.feature_node_hash!r} has no question to answer; "
                "add one to the ontology or leave this classification out",
            )
            raise UnresolvedLabel(errors.problems)
        question = ontology.attributes[0]
        answers = self._resolve_answer(question, label.answer, "answer", errors, allow_dynamic=False)
        if errors.problems:
            raise UnresolvedLabel(errors.problems)
        return ResolvedClassification(label, ontology, answers)

    def skeleton_template(self, ontology: Object) -> SkeletonTemplate:
        """The skeleton object's template; raises UnresolvedLabel (NO_SKELETON_TEMPLATE) when there is none, so
        a caller that did not validate first gets a reportable problem rather than a crash."""
        template = skeleton_template_of(self.structure, ontology)
        if template is None:
            raise UnresolvedLabel([LabelIssue("skeleton", ErrorCode.NO_SKELETON_TEMPLATE, _no_template(ontology))])
        return template

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
        lookup = Lookup("the ontology", noun, unknown, ErrorCode.AMBIGUOUS_TITLE, "use 'feature_hash'")
        known = [items[0] for items in by_title.values()]
        return _matched(by_title.get(title, []), lookup, title, known, "name", errors)

    def _resolve_attributes(
        self,
        owner: str,
        attributes: Sequence[Attribute[Any]],
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
        attribute: Attribute[Any],
        answer: AttributeAnswer,
        path: str,
        errors: _Collector,
        allow_dynamic: bool,
        frames: list[tuple[int, int]] | None = None,
        frames_field: str | None = None,
    ) -> list[ResolvedAnswer]:
        """`allow_dynamic` says the attribute is where Encord takes dynamic answers: an object's own (top-level)
        attributes. The SDK keeps answers to nested and classification attributes in a static map that leaves
        dynamic ones out, and refuses them; so a dynamic attribute anywhere else cannot be answered at all."""
        if attribute.dynamic and not allow_dynamic and frames is None:
            errors.add(
                path,
                ErrorCode.UNANSWERABLE_ATTRIBUTE,
                f"{attribute.title!r} is marked dynamic in the ontology, but Encord takes dynamic answers only for "
                "an object's own attributes, not for nested or classification ones: it cannot be answered",
            )
            return []
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
                        frames_field=f"{path}[{index}].frames",
                    )
                )
            return resolved
        if isinstance(attribute, TextAttribute):
            if isinstance(answer, str):
                return [ResolvedAnswer(attribute, answer, frames, frames_field, path)]
            if isinstance(answer, RelationAnswer) and attribute.title.endswith(RELATION_SUFFIX):
                return [ResolvedAnswer(attribute, RelationTarget(answer.relation_to), frames, frames_field, path)]
            expected = "a text or {relation_to: <object id>}" if attribute.title.endswith(RELATION_SUFFIX) else "a text"
            return self._wrong_answer(attribute, expected, path, errors)
        if isinstance(attribute, ChecklistAttribute):
            if not (isinstance(answer, list) and all(isinstance(item, str) for item in answer)):
                return self._wrong_answer(attribute, "a list of option titles", path, errors)
            options = [self._option(attribute, str(title), f"{path}[{i}]", errors) for i, title in enumerate(answer)]
            chosen = [option for option in options if option is not None]
            if len(chosen) != len(options):
                return []
            return [ResolvedAnswer(attribute, chosen, frames, frames_field, path)]
        if isinstance(attribute, RadioAttribute):
            nested = answer if isinstance(answer, NestedAnswer) else None
            title = nested.option if nested else answer
            if not isinstance(title, str):
                return self._wrong_answer(attribute, "an option title or {option, attributes}", path, errors)
            option = self._option(attribute, title, path, errors)
            if option is None:
                return []
            resolved = [ResolvedAnswer(attribute, option, frames, frames_field, path)]
            if nested and nested.attributes and attribute.dynamic:
                # The SDK only lets a nested attribute be answered under a selected static parent.
                for key in nested.attributes:
                    errors.add(
                        f"{path}.attributes.{key}",
                        ErrorCode.UNANSWERABLE_ATTRIBUTE,
                        f"{key!r} is nested under the dynamic attribute {attribute.title!r}; Encord cannot store "
                        f"answers nested under a dynamic attribute's options: give {option.title!r} alone",
                    )
                return []
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

    def _option(self, attribute: Attribute[Any], key: str, path: str, errors: _Collector) -> Option | None:
        return _one_of(attribute.options, key, path, attribute.title, "option", ErrorCode.UNKNOWN_OPTION, errors)

    @staticmethod
    def _wrong_answer(attribute: Attribute[Any], expected: str, path: str, errors: _Collector) -> list[ResolvedAnswer]:
        kind = type(attribute).__name__.removesuffix("Attribute").lower()
        errors.add(path, ErrorCode.WRONG_ANSWER_TYPE, f"{attribute.title!r} is a {kind} attribute: expected {expected}")
        return []


def _no_template(ontology: Object) -> str:
    """Says what is missing and where the fix is: in the ontology, not in the file."""
    return (
        f"{ontology.title!r} is a skeleton, but the ontology has no skeleton template for it (none has its feature "
        f"hash {ontology.feature_node_hash!r}), so its points cannot be placed; fix the ontology or leave it out"
    )
