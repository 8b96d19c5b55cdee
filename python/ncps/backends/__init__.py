"""The kernel backends of the cells, side by side: :mod:`ncps.backends.cpu` (the fused C++
primitives of ``ncps._ext``) and :mod:`ncps.backends.gpu` (the GPU kernels of ``kernels/``, their
launch layer and C++ emulation). Every hook module of either implements one interface,
:class:`ncps.backends.hooks.Hooks`; :mod:`ncps.backends.ltc_args` holds what both LTC backends
take (parameter order, argument checks). :func:`ncps.kernels.plan` is the one place that picks a
backend. Imports point down: ``ncps.cells`` names its hook modules here, and nothing here imports
``ncps.cells``.
"""
