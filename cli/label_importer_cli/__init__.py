"""The operator's command line, `label-importer`: a package of its own, outside the Lambda layer.

The functions never load it, so what only a person at a terminal needs (argparse, the progress bar, the local
stack behind `import`) stays out of the layer the functions ship with.
"""
