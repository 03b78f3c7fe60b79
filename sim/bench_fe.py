"""``spikeforge bench fe``: the Forward Engine on one real training step (see
:mod:`spikeforge.sim.bench_common` for what is measured and how)."""

from spikeforge.hdl.params import DEFAULT_HW

from .bench_common import bench

__all__ = ["run"]


def run(cfg, simulator="verilator", hw=DEFAULT_HW):
    return bench("fe", cfg, simulator=simulator, hw=hw)
