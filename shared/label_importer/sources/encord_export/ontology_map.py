"""Which target ontology item each feature hash of an export is: the same hash when the target ontology has it
(an export of the same project), else the item of the same title, ignoring case, at the same place (an export of
another project whose ontology was built with the same titles). The mapping option overrides either.

Decided once per feature hash and kept: an export repeats the same few hashes on every row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from encord.objects import Classification, Object, OntologyStructure, Shape
from encord.objects.attributes import Attribute
from encord.objects.options import Option

from label_importer.model.matching import Lookup, Unmatched, exactly_one
from label_importer.model.problems import ErrorCode, did_you_mean
from label_importer.sources.mapping_option import MappingOption
from label_importer.sources.name_matching import LEFT_OUT, ObjectNames, folded

WHERE = "the 'encord' element's"


@dataclass(frozen=True)
class Placed:
    """An attribute of the target ontology, and the option it is nested under (None at the top level)."""

    attribute: Attribute[Any]
    parent_option: str | None


@dataclass
class AttributeTree:
    """Every attribute of one ontology object or classification, at any depth."""

    owner: str
    by_hash: dict[str, Placed] = field(default_factory=dict)
    by_title: dict[str, list[Placed]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def of(cls, owner: str, attributes: Iterable[Attribute[Any]]) -> AttributeTree:
        tree = cls(owner)

        def walk(attributes: Iterable[Attribute[Any]], parent: str | None) -> None:
            for attribute in attributes:
                placed = Placed(attribute, parent)
                tree.by_hash[attribute.feature_node_hash] = placed
                tree.by_title[folded(attribute.title)].append(placed)
                for option in getattr(attribute, "options", []):
                    walk(getattr(option, "attributes", []), option.feature_node_hash)

        walk(attributes, None)
        return tree


class OntologyMap:
    def __init__(self, ontology: OntologyStructure, option: MappingOption) -> None:
        self._ontology = ontology
        self._option = option
        self._objects = {obj.feature_node_hash: obj for obj in ontology.objects}
        self._classifications = {item.feature_node_hash: item for item in ontology.classifications}
        self._names = ObjectNames(
            ontology,
            option.objects,
            shapes=frozenset(Shape),
            format_name="an Encord export",
            where=f"{WHERE} 'objects'",
            noun="object",
        )
        self._object_cache: dict[tuple[str, str], Object | Unmatched | None] = {}
        self._classification_cache: dict[tuple[str, str], Classification | Unmatched | None] = {}
        self._trees: dict[str, AttributeTree] = {}

    def object(self, feature_hash: str, name: str) -> Object | Unmatched | None:
        """The target object for an export object (its featureHash and name); None: mapped to null."""
        key = (feature_hash, name)
        if key not in self._object_cache:
            self._object_cache[key] = self._find_object(feature_hash, name)
        return self._object_cache[key]

    def _find_object(self, feature_hash: str, name: str) -> Object | Unmatched | None:
        mapped = self._option.objects
        if feature_hash in mapped:
            return self._names.object(feature_hash)  # the mapping names the target (or null)
        if name not in mapped and feature_hash in self._objects:
            return self._objects[feature_hash]
        return self._names.object(name)

    def classification(self, feature_hash: str, question: str) -> Classification | Unmatched | None:
        """The target classification for an export classification (its featureHash and question title)."""
        key = (feature_hash, question)
        if key not in self._classification_cache:
            self._classification_cache[key] = self._find_classification(feature_hash, question)
        return self._classification_cache[key]

    def _find_classification(self, feature_hash: str, question: str) -> Classification | Unmatched | None:
        mapped = self._option.classifications
        key = feature_hash if feature_hash in mapped else question if question in mapped else None
        if key is not None and mapped[key] is LEFT_OUT:
            return LEFT_OUT
        if key is None and feature_hash in self._classifications:
            return self._classifications[feature_hash]
        target = question if key is None else str(mapped[key])
        candidates = [item for item in self._ontology.classifications if item.feature_node_hash == target] or [
            item
            for item in self._ontology.classifications
            if item.attributes and folded(item.attributes[0].title) == folded(target)
        ]
        lookup = Lookup(
            "the ontology",
            "classification",
            ErrorCode.UNKNOWN_CLASSIFICATION,
            ErrorCode.AMBIGUOUS_TITLE,
            f"map it to one feature hash in {WHERE} 'classifications'",
        )

        def suggest() -> str:
            titles = (item.attributes[0].title for item in self._ontology.classifications if item.attributes)
            return f"{did_you_mean(target, titles)}; map it in {WHERE} 'classifications' (null leaves it out)"

        return exactly_one(
            candidates, lookup, f"asking {target!r}", lambda item: f"{item.feature_node_hash!r}", suggest
        )

    def tree(self, item: Object | Classification) -> AttributeTree:
        found = self._trees.get(item.feature_node_hash)
        if found is None:
            title = item.title if isinstance(item, Object) else (item.attributes[0].title if item.attributes else "")
            found = self._trees[item.feature_node_hash] = AttributeTree.of(title, item.attributes)
        return found

    def attribute(self, tree: AttributeTree, feature_hash: str, name: str) -> Placed | Unmatched:
        if feature_hash in tree.by_hash:
            return tree.by_hash[feature_hash]
        target = self._option.attributes.get(feature_hash, self._option.attributes.get(name, name))
        lookup = Lookup(
            f"{tree.owner!r}",
            "attribute",
            ErrorCode.UNKNOWN_ATTRIBUTE,
            ErrorCode.AMBIGUOUS_TITLE,
            f"map it in {WHERE} 'attributes'",
        )
        return exactly_one(
            tree.by_title.get(folded(target), []),
            lookup,
            f"titled {target!r}",
            lambda placed: f"{placed.attribute.feature_node_hash!r}",
            lambda: f"{did_you_mean(target, (p.attribute.title for p in tree.by_hash.values()))}",
        )

    def option(self, attribute: Attribute[Any], feature_hash: str, name: str) -> Option | Unmatched:
        options: list[Option] = list(getattr(attribute, "options", []))
        by_hash = [option for option in options if option.feature_node_hash == feature_hash]
        if by_hash:
            return by_hash[0]
        target = self._option.options.get(feature_hash, self._option.options.get(name, name))
        lookup = Lookup(
            f"{attribute.title!r}",
            "option",
            ErrorCode.UNKNOWN_OPTION,
            ErrorCode.AMBIGUOUS_TITLE,
            f"map it in {WHERE} 'options'",
        )
        return exactly_one(
            [option for option in options if folded(option.title) == folded(target)],
            lookup,
            f"titled {target!r}",
            lambda option: f"{option.feature_node_hash!r}",
            lambda: did_you_mean(target, (option.title for option in options)),
        )
