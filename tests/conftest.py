"""Shared fixtures of the test suite: simulator skips and small configurations."""

import pytest

from spikeforge.hdl.design import Design
from spikeforge.hdl.params import HwParams
from spikeforge.model.config import Config
from spikeforge.sim.verify.runner import available_simulators

#: a 6-8-4 network small enough for the Amaranth simulator of the whole accelerator
TINY = dict(layers=(6, 8, 4), timesteps=3, batch=2, target_true=3, init_gain=3.0, lr=2.0 ** -4)
TINY_HW = HwParams(fe_group=2, pes=2, wue_group=2)


def tiny_design(**changes):
    cfg_fields = set(Config.__dataclass_fields__)
    cfg = Config(**{**TINY, **{k: v for k, v in changes.items() if k in cfg_fields}})
    hw = TINY_HW.replace(**{k: v for k, v in changes.items() if k not in cfg_fields})
    return Design(cfg.fit_accumulators().validate(), hw)


def require_simulator(name):
    """Skip (with the reason shown) unless simulator ``name`` is installed."""
    if name not in available_simulators():
        pytest.skip(f"{name} is not installed (available: {available_simulators()}); Icarus "
                    f"needs iverilog and vvp on PATH (apt-get install iverilog)")
