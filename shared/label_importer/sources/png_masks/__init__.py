"""Segmentation masks as PNG files (`masks/**/<image>.png`, `encord.json` at the root, in a zip) as a label source:
one record per image, one bitmask object per class (semantic) or per value (instance). See
docs/format-png-masks.md."""
