"""``spikeforge bench wue``: the Weight Update Engine on one real training step (see
:mod:`spikeforge.sim.bench.common` for what is measured and how)."""

from .common import bench

__all__ = ["run"]


def run(design, dataset, simulator="verilator"):
    return bench("wue", design, dataset, simulator=simulator)
