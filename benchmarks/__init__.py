"""The ncps benchmark job (``python benchmarks/run.py``) and its helpers."""
