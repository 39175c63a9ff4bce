"""Pipeline stages: one function per stage, paths/ids in, a small JSON-able dict out.

These are the "shell" around the pure core: the CLI and the Prefect tasks are each a few lines
over a stage. Submodules are imported on demand (they pull in torch, mlflow, evidently).
"""
