"""XML from an untrusted file, parsed with everything that makes XML dangerous refused.

A DTD can declare entities that expand a few hundred bytes into gigabytes ("billion laughs") or read files and
URLs (XXE); no label format needs either. defusedxml refuses a document type declaration outright, so neither
can be declared, and the document is parsed only once its bytes are within the item limit.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring, iterparse

from label_importer.model.problems import ErrorCode, Problem
from label_importer.sources.bounded_reading import ByteStream


class XmlRefused(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def parse_xml(data: bytes, where: str) -> ElementTree.Element:
    """The document's root element; raises XmlRefused naming `where` (the file, or the entry in an archive)."""
    try:
        root: ElementTree.Element = fromstring(data, forbid_dtd=True)
        return root
    except (DefusedXmlException, ElementTree.ParseError, LookupError) as error:
        raise _refused(error, where) from None


def iter_xml(stream: ByteStream, where: str) -> Iterator[tuple[str, ElementTree.Element]]:
    """("start" | "end", element) as the document is read, for documents too large to build whole (a CVAT task's
    annotations.xml); the caller drops what it has used. Raises XmlRefused as `parse_xml` does."""
    try:
        yield from iterparse(stream, events=("start", "end"), forbid_dtd=True)
    except (DefusedXmlException, ElementTree.ParseError, LookupError) as error:
        raise _refused(error, where) from None


def root_tag(head: bytes) -> str | None:
    """The name of the first element in the start of a document, past its declaration, comments and processing
    instructions: which XML format a `.xml` file is, without parsing it."""
    found = _FIRST_ELEMENT.search(_COMMENT.sub(b"", head))
    return found.group(1).decode("ascii", "replace") if found else None


_COMMENT = re.compile(rb"<!--.*?-->", re.DOTALL)
_FIRST_ELEMENT = re.compile(rb"<([A-Za-z_][\w.:-]*)")


def _refused(error: Exception, where: str) -> XmlRefused:
    if isinstance(error, DefusedXmlException):
        return XmlRefused(
            Problem(
                0,
                where,
                ErrorCode.UNSAFE_XML,
                f"{where} declares a document type or entities ({type(error).__name__}); label XML needs "
                "neither, and they can expand without bound or read other files, so the file is refused",
            )
        )
    if isinstance(error, LookupError):  # the declaration names an encoding no codec reads
        return XmlRefused(Problem(0, where, ErrorCode.INVALID_XML, f"{where} declares an unknown encoding: {error}"))
    return XmlRefused(Problem(0, where, ErrorCode.INVALID_XML, f"{where} is not well-formed XML: {error}"))
