"""Labelbox's export (export v2 / `export()` streams, NDJSON: one data row per line) as a label source. See
docs/format-labelbox.md."""
