"""Plumbing every layer shares, importing nothing of the package: atomic writes and JSON conversion, errors,
the project root, references to functions by name, the results layout, "did you mean", the filters for known
third-party noise, and the PyPI data and model packages."""
