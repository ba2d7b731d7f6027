"""A CVAT XML document read one top-level item at a time: each `<image>`, `<track>` and (video) `<tag>` is handed
over whole and then dropped, so a task's annotations.xml of any size is read in bounded memory; each item is
bounded by MAX_LINE_BYTES through the stream's `mark_item`. `<meta>` says which kind of task it is, and for a
video its name, frame size and how CVAT's frame numbers map onto the video's.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from label_importer.model.problems import ErrorCode, Problem
from label_importer.sources.bounded_reading import ItemStream
from label_importer.sources.label_source import SourceRejected
from label_importer.sources.safe_xml import XmlRefused, iter_xml

ROOT = "annotations"
ITEMS = ("image", "track", "tag")
TOP_LEVEL = ("version", "meta", *ITEMS)
_STEP = re.compile(r"step\s*=\s*(\d+)")


@dataclass(frozen=True)
class Meta:
    video: bool
    """A video task (CVAT's "interpolation" mode: tracks) rather than an image task ("annotation" mode)."""
    name: str | None
    """The video's name: `<source>`, else the task's `<name>`."""
    width: int | None
    height: int | None
    """`<original_size>`: a video task's frame size."""
    start_frame: int = 0
    frame_step: int = 1
    """A task made from part of a video: CVAT's frame n is the video's `start_frame + n * frame_step`."""


@dataclass(frozen=True)
class Item:
    element: ElementTree.Element
    """The `<image>`, `<track>` or `<tag>`, its children still attached."""
    where: str
    """Its place in the document, as XPath: `annotations.xml:/annotations/image[3]`."""


class CvatDocument:
    def __init__(self, stream: ItemStream, entry: str) -> None:
        self._stream = stream
        self._entry = entry

    def meta(self) -> Meta:
        """What `<meta>` says; reads no further than its end (or the first item, if it has none)."""
        for tag, element in self._top_level():
            if tag == "meta":
                return _meta(element)
            if tag in ITEMS:
                break
        return Meta(video=False, name=None, width=None, height=None)

    def items(self) -> Iterator[Item]:
        counts: Counter[str] = Counter()
        for tag, element in self._top_level():
            if tag in ITEMS:
                counts[tag] += 1
                yield Item(element, f"{self._entry}:/{ROOT}/{tag}[{counts[tag]}]")

    def _top_level(self) -> Iterator[tuple[str, ElementTree.Element]]:
        """Each child of the root once it is complete; it is dropped when the caller asks for the next."""
        depth = 0
        root: ElementTree.Element | None = None
        try:
            for event, element in iter_xml(self._stream, self._entry):
                if event == "start":
                    depth += 1
                    if depth == 1:
                        root = element
                        if element.tag != ROOT:
                            raise SourceRejected([_not_cvat(self._entry, element.tag, inside=False)])
                    continue
                depth -= 1
                if depth == 1 and root is not None:
                    if element.tag not in TOP_LEVEL:
                        raise SourceRejected([_not_cvat(self._entry, element.tag, inside=True)])
                    yield element.tag, element
                    root.remove(element)
                    self._stream.mark_item()
        except XmlRefused as refused:
            raise SourceRejected([refused.problem]) from None


def _not_cvat(entry: str, tag: str, *, inside: bool) -> Problem:
    """A root that is not `<annotations>`, or (`inside`) one holding what CVAT never writes there: a Pascal VOC
    document whose root was misspelt reads like that."""
    if not inside:
        where, what = f"/{tag}", f"the root element is <{tag}>; a CVAT for images or CVAT for video 1.1 document's"
        return Problem(0, f"{entry}:{where}", ErrorCode.UNKNOWN_FORMAT, f"{entry}: {what} is <{ROOT}>")
    return Problem(
        0,
        f"{entry}:/{ROOT}/{tag}",
        ErrorCode.UNKNOWN_FORMAT,
        f"{entry}: <{ROOT}> holds <{tag}>, which a CVAT 1.1 document does not have (it holds "
        f"{', '.join(f'<{name}>' for name in TOP_LEVEL)}); a Pascal VOC document's root is <annotation>",
    )


def _meta(meta: ElementTree.Element) -> Meta:
    task = meta.find("task")
    if task is None:
        task = meta.find("job")
    mode = (task.findtext("mode") if task is not None else None) or ""
    size = meta.find(".//original_size")
    start = task.findtext("start_frame") if task is not None else None
    step = _STEP.search(task.findtext("frame_filter") or "") if task is not None else None
    name = meta.findtext(".//source") or (task.findtext("name") if task is not None else None)
    return Meta(
        video=mode.strip() == "interpolation",
        name=name.strip() if name and name.strip() else None,
        width=_whole(size.findtext("width")) if size is not None else None,
        height=_whole(size.findtext("height")) if size is not None else None,
        start_frame=_whole(start) or 0,
        frame_step=max(_whole(step.group(1)) or 1, 1) if step else 1,
    )


def _whole(text: str | None) -> int | None:
    try:
        return int((text or "").strip())
    except ValueError:
        return None
