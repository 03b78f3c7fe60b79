"""Networks to and from snnTorch modules.

:func:`to_snntorch` builds the network of a weights file as ``torch.nn.Sequential`` of
``nn.Linear(bias=False)`` and ``snn.Leaky(beta=alpha, threshold=vth, reset_mechanism="zero",
init_hidden=True)`` layers (the last with ``output=True``), whose spikes equal the golden model's
in float mode step by step (``tests/test_nir.py``). :func:`from_snntorch` reads such a module back
through the same checks as a NIR graph (:func:`spikeforge.model.nir_io.weights_from_graph`):
biases, other reset mechanisms, other layers, per-neuron decays or thresholds and decays the
hardware cannot realise are refused with what to change.
"""

import functools

import numpy as np
import torch

from .nir_io import DT, NirError, _float_weights, weights_from_graph

__all__ = ["to_snntorch", "from_snntorch", "rectangular_spike"]


class _Rect(torch.autograd.Function):
    """Heaviside forward, ``[|x| < window / 2]`` backward: the golden model's surrogate."""

    @staticmethod
    def forward(ctx, x, window):
        ctx.save_for_backward(x)
        ctx.window = window
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() < ctx.window / 2).to(grad.dtype), None


def rectangular_spike(x, window):
    """snnTorch ``spike_grad`` of the golden model (a module-level function, so an exported
    module pickles with ``torch.save``)."""
    return _Rect.apply(x, window)


def to_snntorch(weights, cfg, mode="fixed"):
    import snntorch as snn

    from .nir_io import check_exportable
    check_exportable(cfg, "snnTorch export")
    layers = []
    grad = functools.partial(rectangular_spike, window=cfg.window)
    ws = _float_weights(weights, cfg, mode)
    for l, w in enumerate(ws):
        lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(w, dtype=torch.float32))
        layers += [lin, snn.Leaky(beta=cfg.alpha, threshold=cfg.vth, reset_mechanism="zero",
                                  spike_grad=grad, init_hidden=True, output=l == len(ws) - 1)]
    return torch.nn.Sequential(*layers)


def _scalar(value, what, where):
    a = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value,
                   dtype=np.float64).ravel()
    if a.size == 0 or np.ptp(a) > 1e-6 * max(1.0, abs(a[0])):
        raise NirError(f"{where}: {what} differs between neurons; the accelerator has one: "
                       f"retrain with a shared {what}")
    return float(a[0])


def from_snntorch(module, base, mode="fixed"):
    """``(weights, cfg)`` of an snnTorch ``Sequential`` of bias-free Linear and Leaky layers."""
    import nir
    import snntorch as snn
    children = list(module.children()) if isinstance(module, torch.nn.Sequential) else None
    if not children:
        raise NirError("expected a torch.nn.Sequential of nn.Linear and snn.Leaky layers")
    nodes, edges, prev = {}, [], "input"
    first = children[0]
    if not isinstance(first, torch.nn.Linear):
        raise NirError(f"layer 0 is {type(first).__name__}; the network must start with "
                       f"nn.Linear")
    nodes["input"] = nir.Input(input_type=np.array([first.in_features]))
    for i, layer in enumerate(children):
        name = f"l{i}"
        if isinstance(layer, torch.nn.Linear):
            w = layer.weight.detach().cpu().numpy().astype(np.float64)
            if layer.bias is not None:
                nodes[name] = nir.Affine(weight=w, bias=layer.bias.detach().cpu().numpy())
            else:
                nodes[name] = nir.Linear(weight=w)
            n = w.shape[0]
        elif isinstance(layer, snn.Leaky):
            if layer.reset_mechanism != "zero":
                raise NirError(f"layer {i}: reset_mechanism={layer.reset_mechanism!r}; the "
                               f"accelerator resets to zero: use reset_mechanism='zero'")
            beta = _scalar(layer.beta, "beta", f"layer {i}")
            vth = _scalar(layer.threshold, "threshold", f"layer {i}")
            tau = DT / (1 - beta) if beta < 1 else np.inf
            nodes[name] = nir.LIF(tau=np.full(n, tau), r=np.full(n, tau / DT),
                                  v_leak=np.zeros(n), v_threshold=np.full(n, vth),
                                  v_reset=np.zeros(n))
        else:
            raise NirError(f"layer {i} is {type(layer).__name__}; only nn.Linear and snn.Leaky "
                           f"can be realised")
        edges.append((prev, name))
        prev = name
    nodes["output"] = nir.Output(output_type=np.array([n]))
    edges.append((prev, "output"))
    return weights_from_graph(nir.NIRGraph(nodes=nodes, edges=edges), base, mode)
