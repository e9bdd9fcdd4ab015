"""ffstore: a content-addressed model store with signed manifests and lockfiles.

The package imports nothing heavy at import time so that store verbs start fast.
"""

__version__ = "0.1.0"
