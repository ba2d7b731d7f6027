"""YOLO label files (`labels/**/*.txt` with `data.yaml` or `classes.txt`, in a zip) as a label source: one record
per line. See docs/format-yolo.md."""
