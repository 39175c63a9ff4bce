"""Pipeline stages: one function per stage, paths/ids in, a typed result out (`results.py`).

These are the "shell" around the pure core: the CLI and the Prefect tasks are each a few lines
over a stage. No stage imports another: they share only `results`, and what several stages need
lives in the library below them (`xferlib.context`, `xferlib.release`). Submodules are imported
on demand (they pull in torch, mlflow, evidently).
"""
