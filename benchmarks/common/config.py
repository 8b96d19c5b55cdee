"""One base for the configurations of a run (sizes, repetition policies, recipes), and the sizes of
the timing sections."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar, TypeVar

from benchmarks.timing import Policy

C = TypeVar("C", bound="Config")


def _public(value: Any) -> Any:
    if isinstance(value, Config):
        return value.public()
    if isinstance(value, Policy):
        return value.to_dict()
    return list(value) if isinstance(value, tuple) else value


@dataclass
class Config:
    """Base of every configuration: the defaults are the full run's; ``QUICK`` and ``TINY`` give
    the fields that a ``--quick`` and a ``--tiny`` run change (``TINY`` over ``QUICK`` when both
    are given)."""

    QUICK: ClassVar[dict[str, Any]] = {}
    TINY: ClassVar[dict[str, Any]] = {}

    @classmethod
    def make(cls: type[C], quick: bool, tiny: bool) -> C:
        cfg = cls()
        if quick:
            cfg = replace(cfg, **cls.QUICK)
        if tiny:
            cfg = replace(cfg, **cls.TINY)
        return cfg

    def public(self) -> dict:
        """The settings as JSON values (tuples as lists, policies and nested configs as dicts)."""
        return {f.name: _public(getattr(self, f.name)) for f in fields(self)}


_TINY_POLICY = Policy(warmup=1, reps=2, min_reps=1, budget_s=0.2)


@dataclass
class RunConfig(Config):
    """Every size and repetition count of the timing sections (ltc, cfc, scaling, threads, memory,
    precision, streaming, limits, gpu); the accuracy and training sections' own configurations ride along."""

    batch: int = 32
    time: int = 100
    inputs: int = 16
    units: int = 64
    motor: int = 8
    ode_unfolds: int = 6
    backbone_units: int = 128
    backbone_layers: int = 1
    # scaling
    sparse_units: int = 256
    sparse_motor: int = 16
    sparse_level: float = 0.8
    scan_time: tuple = (25, 100, 1000, 10000)
    scan_batch: tuple = (1, 8, 32, 128, 1024)
    scan_units: tuple = (16, 64, 256, 1024)
    scan_sparse_units: tuple = (64, 256, 1024)  # AutoNCP(N, sparse_motor, sparsity_level=sparse_level)
    scan_sparsity: tuple = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    # cost per row-step: (B values at T = time, T values, the B of the T sweep)
    scan_row_steps: tuple = ((1, 8, 32, 64, 128, 160, 256, 512, 1024), (25, 50, 100, 200, 400), 256)
    sparsity_units: int = 128
    sparsity_motor: int = 16
    # the reference path runs in a scaling point only if B*T*N^2 <= this (32*100*64^2 is ~2-3 s)
    reference_work_limit: float = 32 * 200 * 64**2
    threads: int = 2  # torch threads of the official run (set from --torch-threads / the cores)
    peers: tuple = ("official", "keras-jax", "torch.compile")  # from --peers
    # interleaved rounds of every comparison with a peer (ours, peer, ours, peer ...); each side's
    # policy is split over them (timing.per_round), and each ratio's spread is over them
    rounds: int = 5
    # thread scaling (section threads): batches, and the peers timed at each thread count too
    thread_batches: tuple = (32, 256)
    thread_peers: tuple = ("official", "keras-jax")
    gemm_n: int = 2048  # the machine-limit GEMM (numpy, XLA)
    limit_seconds: float = 2.0  # time per machine-limit probe
    # repetition policies
    fast: Policy = Policy(warmup=2, reps=10, min_reps=3, budget_s=6.0)
    slow: Policy = Policy(warmup=1, reps=5, min_reps=2, budget_s=8.0)
    official: Policy = Policy(warmup=1, reps=7, min_reps=2, budget_s=6.0)
    scan_fast: Policy = Policy(warmup=2, reps=7, min_reps=3, budget_s=3.0)
    scan_slow: Policy = Policy(warmup=1, reps=3, min_reps=1, budget_s=4.0)
    stream: Policy = Policy(warmup=20, reps=1000, min_reps=50, budget_s=2.0)
    # the precision section: millisecond calls whose ratios to float32 are the point, so more
    # repetitions than `fast` (split over the interleaved rounds like every comparison)
    precision: Policy = Policy(warmup=3, reps=100, min_reps=10, budget_s=3.0)
    # the accuracy and training sections' configurations (their classes live with their sections)
    accuracy: Config | None = None
    training: Config | None = None

    QUICK: ClassVar[dict[str, Any]] = {
        "scan_time": (25, 100),
        "scan_batch": (1, 32),
        "scan_units": (16, 64, 256),
        "scan_sparse_units": (64, 256),
        "scan_sparsity": (0.2, 0.5, 0.8),
        "scan_row_steps": ((8, 64, 256, 512), (50, 100), 256),
        "reference_work_limit": 32 * 25 * 64**2,
        "fast": Policy(warmup=1, reps=3, min_reps=2, budget_s=2.0),
        "slow": Policy(warmup=1, reps=1, min_reps=1, budget_s=1.0),
        "official": Policy(warmup=1, reps=3, min_reps=1, budget_s=2.0),
        "scan_fast": Policy(warmup=1, reps=3, min_reps=1, budget_s=1.0),
        "scan_slow": Policy(warmup=1, reps=1, min_reps=1, budget_s=1.0),
        "stream": Policy(warmup=10, reps=300, min_reps=30, budget_s=0.5),
        "precision": Policy(warmup=2, reps=30, min_reps=6, budget_s=1.0),
        "limit_seconds": 0.5,
        "rounds": 3,
        "thread_peers": ("keras-jax",),
        # torch.compile's inductor compiles for minutes on a 2-core machine: full runs only
        # (or --peers official,keras-jax,torch.compile)
        "peers": ("official", "keras-jax"),
    }
    TINY: ClassVar[dict[str, Any]] = {  # test sizes: seconds for everything
        "batch": 2,
        "time": 6,
        "units": 12,
        "motor": 2,
        "backbone_units": 16,
        "sparse_units": 24,
        "sparse_motor": 4,
        "scan_time": (3, 6),
        "scan_batch": (1, 2),
        "scan_units": (8, 12),
        "scan_sparse_units": (12, 16),
        "scan_sparsity": (0.2, 0.8),
        "scan_row_steps": ((1, 2), (3, 6), 2),
        "sparsity_units": 16,
        "sparsity_motor": 2,
        "reference_work_limit": 2 * 6 * 12**2,  # exercises the "skipped" path too
        "fast": _TINY_POLICY,
        "slow": _TINY_POLICY,
        "official": _TINY_POLICY,
        "scan_fast": _TINY_POLICY,
        "scan_slow": _TINY_POLICY,
        "stream": Policy(warmup=3, reps=20, min_reps=5, budget_s=0.1),
        "precision": _TINY_POLICY,
        "gemm_n": 256,
        "limit_seconds": 0.05,
        "rounds": 3,
        "thread_batches": (2, 4),
        "thread_peers": (),
    }

    def shape(self) -> dict:
        """The shape of the headline models' calls, for the tables' captions."""
        return {k: getattr(self, k) for k in ("batch", "time", "inputs", "units", "ode_unfolds")}
