"""Running notebooks: papermill orchestration, shipped results, the report, and the ``rlhf-nb`` command line."""
