"""Encord label importer: the Lambda layer package."""
