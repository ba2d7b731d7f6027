"""COCO files (`instances_*.json`, `person_keypoints_*.json`) as a second input format.

`document` streams the file, `format` checks what it reads, `mapping` matches images and categories to the
project, `geometry` converts pixels to the label format, and `records` turns each annotation into a label
record for the shared validation, chunking and import.
"""
