"""A perturbed forward pass: what analog or imperfect spiking hardware does to the golden model.

Hardware-in-the-loop training (Cramer et al. 2020) exists because a chip's forward pass is not
the model's: every neuron has its own gain and threshold (fixed-pattern mismatch) and the
currents are noisy. :class:`PerturbedNetwork` is the golden fixed-point network with those
three effects, fixed by a seed (:class:`Perturbation`):

- **weight gain**: neuron ``i`` of layer ``l`` sees its weights scaled by
  ``1 + weight * N(0, 1)`` (drawn once), rounded and saturated to ``w_bits``;
- **threshold offset**: its threshold is ``vth + threshold * vth * N(0, 1)`` (drawn once, in
  the fixed-point code of ``u``); its surrogate window sits around its own threshold;
- **noise**: each point's synaptic current gets ``noise * vth * N(0, 1)`` (fresh every pass,
  rounded), from its own generator.

With all three 0 it is the golden model exactly. It serves as a forward backend of
``spikeforge train --engine hil --backend model --perturb ...`` (the golden backward pass trains
from its traces) and of ``spikeforge infer --engine model --perturb ...`` (software-trained
weights deployed on it).
"""

from dataclasses import dataclass

import numpy as np

from .config import ConfigError
from .fixedpoint import saturate
from .network import LayerTrace, Network

__all__ = ["Perturbation", "PerturbedNetwork", "parse_perturbation", "ModelDriver", "run_now"]


@dataclass(frozen=True)
class Perturbation:
    weight: float = 0.0
    threshold: float = 0.0
    noise: float = 0.0
    seed: int = 1

    def any(self):
        return bool(self.weight or self.threshold or self.noise)


def parse_perturbation(text):
    """``"weight=0.2,threshold=0.1,noise=0.05,seed=3"`` (any subset) -> :class:`Perturbation`."""
    fields = {}
    for item in filter(None, (text or "").split(",")):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in Perturbation.__dataclass_fields__:
            raise ConfigError(f"--perturb takes weight=, threshold=, noise=, seed= (comma "
                              f"separated), got {item!r}")
        try:
            fields[key] = int(value) if key == "seed" else float(value)
        except ValueError:
            raise ConfigError(f"--perturb {key}: not a number: {value!r}") from None
        if key != "seed" and not 0 <= fields[key] <= 2:
            raise ConfigError(f"--perturb {key} must be in 0..2, got {value}")
    return Perturbation(**fields)


class PerturbedNetwork(Network):
    """The golden fixed-point network with the forward pass of ``perturbation``."""

    def __init__(self, cfg, perturbation, weights=None, seed=0):
        if cfg.recurrent or cfg.w_levels or cfg.fan_in:
            from .config import ConfigError
            raise ConfigError("the perturbed forward pass models a feed-forward chip; recurrent "
                              "and constrained networks train with --engine golden")
        super().__init__(cfg, "fixed", weights=weights, seed=seed)
        self.perturbation = p = perturbation
        rng = np.random.default_rng([p.seed, 5])
        self.gains = [1 + p.weight * rng.standard_normal(n) for n in cfg.layers[1:]]
        self.vths = [cfg.vth_int + np.round(p.threshold * cfg.vth_int *
                                            rng.standard_normal(n)).astype(np.int64)
                     for n in cfg.layers[1:]]
        self.noise_rng = np.random.default_rng([p.seed, 6])

    def forward(self, x):
        cfg, a = self.cfg, self.arith
        x = np.asarray(x, dtype=np.int64)
        traces = []
        for gain, vth, w in zip(self.gains, self.vths, self.weights):
            T, B, n_in = x.shape
            w_eff = saturate(np.round(w * gain[:, None]).astype(np.int64), cfg.w_bits)
            current = a.synaptic_input(x.reshape(T * B, n_in), w_eff).reshape(T, B, -1)
            if self.perturbation.noise:
                current = current + np.round(self.perturbation.noise * cfg.vth_int *
                                             self.noise_rng.standard_normal(current.shape)
                                             ).astype(np.int64)
            u = np.zeros_like(current)
            o = np.zeros(current.shape, dtype=np.int64)
            u_prev, o_prev = np.zeros_like(current[0]), np.zeros_like(o[0])
            for t in range(T):
                u[t] = a.membrane(a.decay(u_prev * (1 - o_prev)), current[t])
                o[t] = u[t] > vth
                u_prev, o_prev = u[t], o[t]
            h = ((u > vth - cfg.half_window_int) & (u < vth + cfg.half_window_int)).astype(
                np.int64)
            traces.append(LayerTrace(x=x, u=u, o=o, h=h))
            x = o
        return traces


def run_now(coro):
    """Run a coroutine that never waits (the model driver's) to its result."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the coroutine waited on something")


class ModelDriver:
    """The accelerator driver's forward-pass interface (``load_weights``, ``forward``,
    ``infer``) over a :class:`PerturbedNetwork`: a software stand-in for a chip."""

    def __init__(self, network):
        self.net = network

    async def load_weights(self, weights):
        self.net.weights = [np.array(w, dtype=np.int64) for w in weights]

    async def forward(self, x):
        traces = self.net.forward(x)
        states = [{"o": tr.o, "h": tr.h} if not self.net.cfg.reset_grad else
                  {"o": tr.o, "u": tr.u} for tr in traces]
        return self.net.classify(self.net.counts(traces)), states

    async def infer(self, x):
        return self.net.predict(x)
