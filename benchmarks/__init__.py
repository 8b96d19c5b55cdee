"""The ncps benchmark job (``python benchmarks/run.py``) and its helpers.

Imports point down, never up (tests/test_layout.py checks it):

- ``run`` — the command line; the only module that touches ``sys.path`` (so that the package
  imports when run as a script);
- ``report`` — the sections in the order they run and are shown, assembled into markdown and a chart;
- one module per section, each with ``compute(ctx)``, ``markdown(section, results)`` and
  ``panels(section, results)`` (:class:`benchmarks.common.context.Section`): ``speed`` (the ltc and
  cfc sections and the table against the official package), ``scaling``, ``memory``,
  ``streaming``, ``limits``, ``gpu``, ``accuracy``, ``training``;
- ``common`` — what the sections share; ``oracle`` (the one runner of the official package) and
  ``timing`` (the measurement, shared with the official side).

The official package imports as ``ncps`` too, so it runs in its own process: ``oracle`` starts
``official_torch.py``, ``official_keras.py``, ``official_parity.py``, ``accuracy_torch.py`` and
``training_keras.py`` there, with this folder first on ``sys.path`` (they import ``timing`` and
``official_common`` by name, nothing else of ours).
"""
