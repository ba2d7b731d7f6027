"""CVAT for images 1.1 and CVAT for video 1.1 (`annotations.xml`, alone or in CVAT's export zip)."""
