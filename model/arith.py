"""The two arithmetics of the golden model, behind one interface.

:class:`FixedArith` is the specification the RTL must equal bit for bit: int64 arrays holding
values of the widths in :class:`~spikeforge.model.config.Config`, every rounding and saturation
written out (see ``model/SPEC.md``). :class:`FloatArith` evaluates the same equations in float64;
it is the reference that agrees with snnTorch autograd.

Both expose the same operations, so :mod:`spikeforge.model.network` holds the equations once.
"""

import numpy as np

from .fixedpoint import csd_scale, saturate, shift_round

__all__ = ["FixedArith", "FloatArith", "make_arith", "MODES"]

MODES = ("fixed", "float")


def exact_matmul(a, b, bound_bits):
    """Integer matrix product, exact. Uses float64 BLAS when every partial sum is below 2**53."""
    if bound_bits <= 53:
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a.astype(np.int64) @ b.astype(np.int64)


class FixedArith:
    """Integer arithmetic of the hardware (the specification)."""

    mode = "fixed"
    dtype = np.int64

    def __init__(self, cfg):
        self.cfg = cfg
        self.vth = cfg.vth_int
        self.half_window = cfg.half_window_int
        self._alpha = cfg.alpha_terms
        self._lr = cfg.lr_terms

    # weights ---------------------------------------------------------------------------------
    def weights_from_float(self, w):
        return saturate(np.round(w * (1 << self.cfg.w_frac)).astype(np.int64), self.cfg.w_bits)

    def weights_to_float(self, w):
        return w.astype(np.float64) / (1 << self.cfg.w_frac)

    def weight_levels(self, w):
        """``w`` rounded to its level of ``w_levels``: ``clamp(rshr(w, s), -L/2, L/2 - 1) << s``
        with ``s = w_level_shift`` (SPEC section 6a)."""
        half, s = self.cfg.w_levels // 2, self.cfg.w_level_shift
        return np.clip(shift_round(w, s), -half, half - 1) << s

    # forward ---------------------------------------------------------------------------------
    def synaptic_input(self, x, w):
        """``I = x @ W^T`` for binary ``x`` (rows are points); exact in the forward accumulator."""
        return exact_matmul(x, w.T, self.cfg.fwd_acc_bits)

    def decay(self, v):
        """``alpha * v`` by shifts and adds, each term rounded half up."""
        return csd_scale(v, self._alpha)

    def membrane(self, decayed, current):
        return saturate(decayed + current, self.cfg.u_bits)

    def surrogate(self, u):
        """``h(u) = [|u - vth| < a/2]`` as 0/1 int64."""
        return (np.abs(u - self.vth) < self.half_window).astype(np.int64)

    # backward --------------------------------------------------------------------------------
    def loss_grad(self, counts, targets):
        """``dL/do[t] = count - target`` (same for every t), in the gradient format."""
        return saturate((counts - targets) << self.cfg.e_frac, self.cfg.e_bits)

    def activity_grad(self, counts):
        """The activity regulariser's ``dL/do[t]`` (same for every t) of a layer's spike
        counts (B, n), in the gradient format: ``upper * max(0, c - act_max) - lower *
        max(0, act_min - c)``, strengths in ``2**-e_frac`` units, exact before saturation."""
        upper, lower = self.cfg.act_ints
        c = np.asarray(counts, dtype=np.int64)
        pop = self.cfg.act_pop_int * np.maximum(0, c.sum(axis=-1, keepdims=True)
                                                - self.cfg.act_pop_max)
        return saturate(upper * np.maximum(0, c - self.cfg.act_max)
                        - lower * np.maximum(0, self.cfg.act_min - c) + pop, self.cfg.e_bits)

    def reset_term(self, u, eps_next):
        """``alpha * u[t] * eps[t+1]``: product rounded to the gradient format, then decayed."""
        return csd_scale(shift_round(u * eps_next, self.cfg.w_frac), self._alpha)

    def sat_grad(self, g):
        return saturate(g, self.cfg.e_bits)

    def backprop(self, eps, w):
        """``g = eps @ W`` exact in the backward accumulator, rounded to the gradient format."""
        acc = exact_matmul(eps, w, self.cfg.bwd_acc_bits)
        return saturate(shift_round(acc, self.cfg.w_frac), self.cfg.e_bits)

    def weight_grad(self, eps, x):
        """``dW = eps^T @ x`` summed over all points, exact in the weight-gradient accumulator."""
        return exact_matmul(eps.T, x, self.cfg.wgrad_acc_bits)

    def update(self, w, dw):
        """``W - lr * dW`` by shifts and adds from the gradient to the weight format, saturated."""
        delta = csd_scale(dw, self._lr, self.cfg.e_frac - self.cfg.w_frac)
        return saturate(w - delta, self.cfg.w_bits)


class FloatArith:
    """The same equations in float64 (the reference for snnTorch agreement)."""

    mode = "float"
    dtype = np.float64

    def __init__(self, cfg):
        self.cfg = cfg
        self.vth = float(cfg.vth)
        self.half_window = cfg.window / 2
        self.alpha = float(cfg.alpha)

    def weights_from_float(self, w):
        return np.asarray(w, dtype=np.float64).copy()

    def weights_to_float(self, w):
        return np.asarray(w, dtype=np.float64).copy()

    def weight_levels(self, w):
        """The float form of :meth:`FixedArith.weight_levels`: levels ``k * step``, ``step =
        2**(w_level_shift - w_frac)``, rounded half up."""
        half = self.cfg.w_levels // 2
        step = 2.0 ** (self.cfg.w_level_shift - self.cfg.w_frac)
        return np.clip(np.floor(w / step + 0.5), -half, half - 1) * step

    def synaptic_input(self, x, w):
        return x.astype(np.float64) @ w.T

    def decay(self, v):
        return self.alpha * v

    def membrane(self, decayed, current):
        return decayed + current

    def surrogate(self, u):
        return (np.abs(u - self.vth) < self.half_window).astype(np.float64)

    def loss_grad(self, counts, targets):
        return (counts - targets).astype(np.float64)

    def activity_grad(self, counts):
        c = np.asarray(counts, dtype=np.float64)
        pop = self.cfg.act_pop_upper * np.maximum(0, c.sum(axis=-1, keepdims=True)
                                                  - self.cfg.act_pop_max)
        return (self.cfg.act_upper * np.maximum(0, c - self.cfg.act_max)
                - self.cfg.act_lower * np.maximum(0, self.cfg.act_min - c) + pop)

    def reset_term(self, u, eps_next):
        return self.alpha * u * eps_next

    def sat_grad(self, g):
        return g

    def backprop(self, eps, w):
        return eps @ w

    def weight_grad(self, eps, x):
        return eps.T @ x.astype(np.float64)

    def update(self, w, dw):
        return w - self.cfg.lr * dw


def make_arith(cfg, mode):
    if mode == "fixed":
        return FixedArith(cfg)
    if mode == "float":
        return FloatArith(cfg)
    raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
