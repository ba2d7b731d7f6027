"""Encord's own label export: a JSON list of label rows as `LabelRowV2.to_encord_dict()` writes them."""
