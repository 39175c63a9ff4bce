"""Pipeline stages: one function per stage, paths/ids in, a typed result out (`results.py`).

These are the "shell" around the pure core: the CLI and the Prefect tasks are each a few lines
over a stage. No stage imports another (training, retrain, gating and distributed* are one stage);
they share `context` and `results` only. Submodules are imported on demand (they pull in torch,
mlflow, evidently).
"""
