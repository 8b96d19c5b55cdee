"""The CPU backend: the hook modules of the fused C++ primitives (``ncps._ext``), one per kernel.

:mod:`~ncps.backends.cpu.ltc` serves :class:`~ncps.LTCCell`; :mod:`~ncps.backends.cpu.cfc` serves
:class:`~ncps.CfCCell` and :class:`~ncps.WiredCfCCell`. Each implements
:class:`ncps.backends.hooks.Hooks` (and its streaming forms, :class:`~ncps.backends.hooks.StreamingHooks`);
:mod:`~ncps.backends.cpu.streaming` holds what their streaming steps share.
"""
