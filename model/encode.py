"""Spike encoders: integer intensities ``0..vmax`` to binary spike trains ``(T, N, features)``.

Every encoder is integer-exact and reproducible: the bits it returns are exactly the bits the RTL
receives.

- ``rate``: deterministic rate code. Neuron with intensity ``v`` fires at ``t`` when
  ``floor((t+1) v / vmax) > floor(t v / vmax)``: ``floor(T v / vmax)`` spikes, evenly spread.
- ``bernoulli``: stochastic rate code, ``P(spike) = v / vmax`` per step, from a seeded generator.
- ``latency``: time to first spike, one spike at ``t = round((vmax - v) (T-1) / vmax)``, none at 0.

A sequence (``steps`` > 1: each sample is ``steps`` frames of ``features / steps`` values, frame
after frame, e.g. the rows of a digit) is encoded frame by frame: frame ``s`` fills ticks ``s k ..
(s+1) k - 1`` with ``k = T / steps``, coded as above over its ``k`` ticks (the Bernoulli draws of
frame ``s`` come from the seed extended by ``s``).
"""

import numpy as np

__all__ = ["encode", "ENCODERS"]

ENCODERS = ("rate", "bernoulli", "latency")


def encode(x, timesteps, vmax, kind="rate", seed=0, steps=1):
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 2:
        raise ValueError(f"encode expects (N, features) intensities, got shape {x.shape}")
    if steps > 1:
        if timesteps % steps or x.shape[1] % steps:
            raise ValueError(f"a sequence of {steps} frames needs timesteps and features that "
                             f"are multiples of {steps}, got T = {timesteps} and {x.shape[1]} "
                             f"features; use --set timesteps={steps * max(1, timesteps // steps)}")
        k, f = timesteps // steps, x.shape[1] // steps
        seeds = list(np.atleast_1d(seed))
        return np.concatenate([encode(x[:, s * f:(s + 1) * f], k, vmax, kind, seeds + [s])
                               for s in range(steps)], axis=0)
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
