"""Data and tasks: loaders into a few plain record types, the gold-reward testbed of verifiable instructions, and
the offline En-Fr corpus."""
