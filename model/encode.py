"""Spike encoders: integer intensities ``0..vmax`` to binary spike trains ``(T, N, features)``.

Every encoder is integer-exact and reproducible: the bits it returns are exactly the bits the RTL
receives.

- ``rate``: deterministic rate code. Neuron with intensity ``v`` fires at ``t`` when
  ``floor((t+1) v / vmax) > floor(t v / vmax)``: ``floor(T v / vmax)`` spikes, evenly spread.
- ``bernoulli``: stochastic rate code, ``P(spike) = v / vmax`` per step, from a seeded generator.
- ``latency``: time to first spike, one spike at ``t = round((vmax - v) (T-1) / vmax)``, none at 0.
"""

import numpy as np

__all__ = ["encode", "ENCODERS"]

ENCODERS = ("rate", "bernoulli", "latency")


def encode(x, timesteps, vmax, kind="rate", seed=0):
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 2:
        raise ValueError(f"encode expects (N, features) intensities, got shape {x.shape}")
    if x.min(initial=0) < 0 or x.max(initial=0) > vmax:
        raise ValueError(f"intensities must be in 0..{vmax}, got {x.min()}..{x.max()}")
    t = np.arange(timesteps + 1, dtype=np.int64)[:, None, None]
    if kind == "rate":
        cumulative = (t * x[None]) // vmax
        return np.diff(cumulative, axis=0).astype(np.uint8)
    if kind == "bernoulli":
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, vmax, size=(timesteps,) + x.shape, endpoint=False)
        return (draws < x[None]).astype(np.uint8)
    if kind == "latency":
        fire_at = ((vmax - x) * (timesteps - 1) + vmax // 2) // vmax
        return ((t[:-1] == fire_at[None]) & (x[None] > 0)).astype(np.uint8)
    raise ValueError(f"unknown encoder {kind!r}; choose one of {', '.join(ENCODERS)}")
