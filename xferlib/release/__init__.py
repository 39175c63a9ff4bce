"""How a fine-tuned model becomes a gated version: what the train and retrain stages share.

`run` holds the steps before the gate (the tracked MLflow run, the model, the fit, the splits, the
champion as a warm start); `gate` registers the model as challenger, judges it against the
champion and stores its drift reference. Below the stages, above the registry: no stage imports
another, they meet here.
"""
