"""``ncps.tf``: the official ncps package's tf front end, absent from ncps for MLX. Importing it
raises a ``ModuleNotFoundError`` (an ``ImportError``) that says what to import instead."""

from ._aliases import foreign_front

raise foreign_front("tf")
