"""Pascal VOC annotations (`Annotations/*.xml` in a zip, or one `.xml` file) as a label source: one record per
`<object>`. See docs/format-voc.md."""
