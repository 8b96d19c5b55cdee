"""``ncps.torch``: the official ncps package's torch front end, absent from ncps for MLX. Importing it
raises a ``ModuleNotFoundError`` (an ``ImportError``) that says what to import instead."""

from ._aliases import foreign_front

raise foreign_front("torch")
