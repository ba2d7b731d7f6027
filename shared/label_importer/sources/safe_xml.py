"""XML from an untrusted file, parsed with everything that makes XML dangerous refused.

A DTD can declare entities that expand a few hundred bytes into gigabytes ("billion laughs") or read files and
URLs (XXE); no label format needs either. defusedxml refuses a document type declaration outright, so neither
can be declared, and the document is parsed only once its bytes are within the item limit.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from label_importer.model.problems import ErrorCode, Problem


class XmlRefused(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def parse_xml(data: bytes, where: str) -> ElementTree.Element:
    """The document's root element; raises XmlRefused naming `where` (the file, or the entry in an archive)."""
    try:
        root: ElementTree.Element = fromstring(data, forbid_dtd=True)
        return root
    except DefusedXmlException as refused:
        raise XmlRefused(
            Problem(
                0,
                where,
                ErrorCode.UNSAFE_XML,
                f"{where} declares a document type or entities ({type(refused).__name__}); label XML needs "
                "neither, and they can expand without bound or read other files, so the file is refused",
            )
        ) from None
    except ElementTree.ParseError as error:
        raise XmlRefused(Problem(0, where, ErrorCode.INVALID_XML, f"{where} is not well-formed XML: {error}")) from None
