"""Labelbox classifications as label-format answers: a data row's (or a frame's) own classifications, and the
nested classifications of an object, which are its attributes in Encord.

Labelbox nests answers as the tool wrote them: `{name, radio_answer: {name, classifications: [...]}}`,
`{name, checklist_answers: [{name, classifications}]}`, `{name, text_answer: {content}}`. Questions, attributes and
options are matched to the ontology by title ignoring case, the mapping option's `classifications`, `attributes`
and `options` overriding; the lookups are the Encord export's (`OntologyMap`), written as feature hashes so a
title shared by two items is never guessed.
"""

from __future__ import annotations

from typing import Any

from encord.objects import Classification, Object

from label_importer.model.matching import Unmatched
from label_importer.model.problems import ErrorCode
from label_importer.sources.encord_export.ontology_map import AttributeTree, OntologyMap
from label_importer.sources.json_values import Misfit, mapping, sequence, text
from label_importer.sources.name_matching import LEFT_OUT


class Answers:
    def __init__(self, ontology: OntologyMap, max_depth: int) -> None:
        """`max_depth` bounds nested answers (MAX_ANSWER_DEPTH) while they are read: each level is a call, and a
        hostile row could nest deeper than Python's stack."""
        self._ontology = ontology
        self._max_depth = max_depth

    def tree(self, owner: Object | Classification) -> AttributeTree:
        return self._ontology.tree(owner)

    def attributes(self, owner: Object, given: Any, where: str) -> dict[str, Any]:
        """An object's nested classifications as its `attributes`, keyed by attribute feature hash."""
        return self._level(self._ontology.tree(owner), given, where, 1)

    def classification(self, given: Any, where: str) -> dict[str, Any] | None:
        """A classification label (without frames), or LEFT_OUT when the mapping leaves its question out."""
        item = mapping(given, where)
        question = text(item.get("name"), f"{where}.name")
        target = self._ontology.classification("", question)
        if target is LEFT_OUT:
            return LEFT_OUT
        if isinstance(target, Unmatched):
            raise Misfit(f"{where}.name", target.code, target.reason)
        assert isinstance(target, Classification)
        if not target.attributes:
            raise Misfit(
                f"{where}.name",
                ErrorCode.UNANSWERABLE_ATTRIBUTE,
                f"ontology classification {question!r} has no question to answer",
            )
        tree = self._ontology.tree(target)
        value = self._value(tree, target.attributes[0].feature_node_hash, item, where, 1)
        return {"feature_hash": target.feature_node_hash, "answer": value}

    def _level(self, tree: AttributeTree, given: Any, where: str, depth: int) -> dict[str, Any]:
        if depth > self._max_depth:
            raise Misfit(
                where,
                ErrorCode.NESTING_TOO_DEEP,
                f"answers nest deeper than {self._max_depth} levels (MAX_ANSWER_DEPTH)",
            )
        built: dict[str, Any] = {}
        for index, item in enumerate(sequence(given, where)):
            at = f"{where}[{index}]"
            item = mapping(item, at)
            name = text(item.get("name"), f"{at}.name")
            placed = self._ontology.attribute(tree, "", name)
            if isinstance(placed, Unmatched):
                raise Misfit(f"{at}.name", placed.code, placed.reason)
            key = placed.attribute.feature_node_hash
            built[key] = self._value(tree, key, item, at, depth)
        return built

    def _value(self, tree: AttributeTree, attribute_hash: str, item: dict[str, Any], where: str, depth: int) -> Any:
        attribute = tree.by_hash[attribute_hash].attribute
        if "radio_answer" in item:
            at = f"{where}.radio_answer"
            answer = mapping(item["radio_answer"], at)
            option = self._option(attribute, answer, at)
            nested = self._level(tree, answer.get("classifications") or [], f"{at}.classifications", depth + 1)
            return {"option": option, "attributes": nested} if nested else option
        if "checklist_answers" in item:
            at = f"{where}.checklist_answers"
            options = []
            for index, answer in enumerate(sequence(item["checklist_answers"], at)):
                answer = mapping(answer, f"{at}[{index}]")
                if answer.get("classifications"):
                    raise Misfit(
                        f"{at}[{index}].classifications",
                        ErrorCode.UNANSWERABLE_ATTRIBUTE,
                        "Encord keeps nested answers only under the chosen option of a radio question, not under a "
                        "checklist's options",
                    )
                options.append(self._option(attribute, answer, f"{at}[{index}]"))
            return options
        if "text_answer" in item:
            at = f"{where}.text_answer"
            return text(mapping(item["text_answer"], at).get("content"), f"{at}.content")
        raise Misfit(
            where,
            ErrorCode.MISSING_FIELD,
            "a classification is answered by radio_answer, checklist_answers or text_answer",
        )

    def _option(self, attribute: Any, answer: dict[str, Any], where: str) -> str:
        name = text(answer.get("name"), f"{where}.name")
        found = self._ontology.option(attribute, "", name)
        if isinstance(found, Unmatched):
            raise Misfit(f"{where}.name", found.code, found.reason)
        return str(found.feature_node_hash)
