"""The bounds every source, check and the chunker stop at; one object, so settings configure them in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a hostile or accidental file from exhausting a function; each is configurable."""

    max_file_bytes: int = 1 << 30
    """Validation runs at about 5 MB/s (bench/validator_memory.py): 1 GiB fits the 15-minute Lambda limit."""
    max_line_bytes: int = 8 << 20
    max_records: int = 10_000_000
    max_objects_per_data_unit: int = 10_000
    max_polygon_points: int = 50_000
    max_bitmask_pixels: int = 100_000_000
    max_answer_depth: int = 8
    """Nested attribute answers (option -> attribute -> option ...); raw JSON depth is capped by the parser."""
    max_compression_ratio: int = 100
    """Decompressed bytes per compressed byte; label JSON compresses 5-20 times, a decompression bomb 1000."""
    max_chunk_bytes: int = 8 << 20
    """Label JSON per chunk, and so per data unit (a row is saved whole): what bounds an import consumer's
    memory, as the SDK holds a few hundred bytes per coordinate (bench/consumer_memory.py)."""
    max_coco_images: int = 200_000
    max_coco_categories: int = 10_000
    max_archive_entries: int = 100_000
    """Files in one zip (a YOLO or Pascal VOC export has one per image); checked before its directory is read."""


DEFAULT_LIMITS = Limits()
