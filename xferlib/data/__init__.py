"""Images in: validation, ingest, content-addressed shards, Fashion-MNIST; ImageSet out.

Submodules are imported directly (`from xferlib.data.shards import load_imageset`); nothing is
re-exported here so that importing one of them does not pull in the others.
"""
