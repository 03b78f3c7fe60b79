"""``spikeforge bench fe``: the Forward Engine on one real training step (see
:mod:`spikeforge.sim.bench.common` for what is measured and how)."""

from .common import bench

__all__ = ["run"]


def run(design, dataset, simulator="verilator"):
    return bench("fe", design, dataset, simulator=simulator)
