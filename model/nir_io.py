"""Networks in and out through NIR, the Neuromorphic Intermediate Representation (``nir``).

A spikeforge network is a chain of bias-free linear layers, each followed by leaky
integrate-and-fire neurons with reset to zero (``model/SPEC.md``). In NIR that is
``Input -> Linear -> LIF -> Linear -> LIF ... -> Output``, written with snnTorch's convention
(``snntorch/export_nir.py``) so that snnTorch reads it back as the same network:
``dt = 1e-4``, ``tau = dt / (1 - alpha)``, ``r = tau / dt``, ``v_leak = 0``, ``v_reset = 0``,
``v_threshold = vth``. Reading, the decay comes back as ``alpha = 1 - 1 / r`` (``r = tau / dt``
in that convention), so graphs written with any ``dt`` by the same rule import.

:func:`graph_from_weights` / :func:`write_nir` export weights (fixed-point codes are written as
their exact float values ``code * 2**-w_frac``); :func:`weights_from_graph` / :func:`read_nir`
import, refusing with a message that says what to change whatever the hardware cannot realise:
biases, a non-zero leak or reset potential, other node types (convolutions, synaptic currents,
recurrence), a decay that is not a sum of at most 3 signed powers of two (the nearest legal
value is named), a threshold off the weight grid, weights outside the fixed-point range. A fixed
network exported and imported again gives the same codes bit for bit.
"""

import numpy as np

from .config import ConfigError
from .fixedpoint import csd_terms, smax, smin

__all__ = ["DT", "NirError", "graph_from_weights", "weights_from_graph", "write_nir",
           "read_nir", "nearest_decay"]

DT = 1e-4            # snnTorch's export_nir


class NirError(ConfigError):
    """A NIR graph the accelerator cannot realise; the message says what to change."""


def _float_weights(weights, cfg, mode):
    if mode == "fixed":
        return [np.asarray(w, dtype=np.float64) / (1 << cfg.w_frac) for w in weights]
    return [np.asarray(w, dtype=np.float64) for w in weights]


def check_exportable(cfg, where="export"):
    """Refuse what the exports do not carry: recurrent layers, and a constrained network's
    full-precision weights (its effective weights are in ``deployed.npz``)."""
    if cfg.recurrent:
        raise NirError(f"{where}: recurrent layers {list(cfg.recurrent)} are not exported yet "
                       f"(feed-forward chains of Linear and LIF only)")
    if cfg.w_levels or cfg.fan_in:
        raise NirError(f"{where}: these are the full-precision weights of a constrained "
                       f"network; export its deployed.npz (written by spikeforge constrain)")


def graph_from_weights(weights, cfg, mode="fixed"):
    """The NIR graph of a network: ``weights`` in ``mode``'s representation, ``cfg`` its config."""
    import nir
    check_exportable(cfg, "NIR export")
    nodes = {"input": nir.Input(input_type=np.array([cfg.layers[0]]))}
    edges = []
    prev = "input"
    tau = DT / (1 - cfg.alpha)
    for l, w in enumerate(_float_weights(weights, cfg, mode)):
        n = w.shape[0]
        nodes[f"fc{l}"] = nir.Linear(weight=w.astype(np.float32))
        nodes[f"lif{l}"] = nir.LIF(tau=np.full(n, tau, dtype=np.float32),
                                  r=np.full(n, tau / DT, dtype=np.float32),
                                  v_leak=np.zeros(n, dtype=np.float32),
                                  v_threshold=np.full(n, cfg.vth, dtype=np.float32),
                                  v_reset=np.zeros(n, dtype=np.float32))
        edges += [(prev, f"fc{l}"), (f"fc{l}", f"lif{l}")]
        prev = f"lif{l}"
    nodes["output"] = nir.Output(output_type=np.array([cfg.layers[-1]]))
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges)


def write_nir(path, weights, cfg, mode="fixed"):
    import nir
    nir.write(path, graph_from_weights(weights, cfg, mode))


def _chain(graph):
    """The node names from the Input to the Output along the graph's edges (one path)."""
    import nir
    inputs = [k for k, v in graph.nodes.items() if isinstance(v, nir.Input)]
    if len(inputs) != 1:
        raise NirError(f"the graph has {len(inputs)} Input nodes; spikeforge takes one input "
                       f"layer feeding a chain of Linear and LIF nodes")
    succ = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
    chain, node = [], inputs[0]
    seen = set()
    while True:
        chain.append(node)
        seen.add(node)
        nxt = succ.get(node, [])
        if not nxt:
            break
        if len(nxt) > 1 or nxt[0] in seen:
            raise NirError(f"node {node!r} feeds {nxt}: branches and recurrent connections "
                           f"cannot be realised; export a feed-forward chain of Linear and LIF "
                           f"layers")
        node = nxt[0]
    if not isinstance(graph.nodes[chain[-1]], nir.Output):
        raise NirError(f"the chain from the input ends at {chain[-1]!r}, not at an Output node")
    return chain


def _uniform(values, what, node):
    a = np.asarray(values, dtype=np.float64).ravel()
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise NirError(f"{node}: {what} is empty or not finite")
    if np.ptp(a) > 1e-6 * max(1.0, abs(a[0])):
        raise NirError(f"{node}: {what} differs between neurons ({a.min()} .. {a.max()}); the "
                       f"accelerator has one {what} for every neuron: retrain with a shared one")
    return float(a[0])


def _legal_decays():
    import itertools
    powers = [sign * 2.0 ** -s for s in range(17) for sign in (1, -1)]
    values = set()
    for k in (1, 2, 3):
        for combo in itertools.combinations(powers, k):
            v = sum(combo)
            if 0 < v < 1 and csd_terms(v, 3, max_shift=16) is not None:
                values.add(v)
    return sorted(values)


_LEGAL = None


def nearest_decay(alpha):
    """The value nearest ``alpha`` in (0, 1) that is a sum of at most 3 signed powers of two
    (shifts 0..16): what the hardware's shift-and-add decay can realise."""
    global _LEGAL
    if _LEGAL is None:
        _LEGAL = _legal_decays()
    return min(_LEGAL, key=lambda v: abs(v - alpha))


def weights_from_graph(graph, base, mode="fixed"):
    """``(weights, cfg)`` of a NIR graph: ``base`` gives every field the graph does not fix (its
    layers, ``alpha`` and ``vth`` come from the graph); weights in ``mode``'s representation."""
    import nir
    chain = _chain(graph)
    body = chain[1:-1]
    layers = [int(np.prod(graph.nodes[chain[0]].input_type["input"]))
              if isinstance(graph.nodes[chain[0]].input_type, dict)
              else int(np.prod(graph.nodes[chain[0]].input_type))]
    weights, alphas, vths = [], [], []
    if len(body) < 2 or len(body) % 2:
        raise NirError(f"the graph's chain is {[type(graph.nodes[k]).__name__ for k in chain]}; "
                       f"spikeforge needs Input, then pairs of Linear and LIF, then Output")
    for i in range(0, len(body), 2):
        lin_name, lif_name = body[i], body[i + 1]
        lin, lif = graph.nodes[lin_name], graph.nodes[lif_name]
        if isinstance(lin, nir.Affine):
            if np.any(np.asarray(lin.bias) != 0):
                raise NirError(f"{lin_name}: an Affine layer with a bias; the accelerator has no "
                               f"biases: retrain with bias=False (nn.Linear(..., bias=False))")
        elif not isinstance(lin, nir.Linear):
            raise NirError(f"{lin_name}: a {type(lin).__name__} node where a Linear layer must "
                           f"be; convolutions, pooling and other nodes cannot be realised")
        if not isinstance(lif, nir.LIF):
            raise NirError(f"{lif_name}: a {type(lif).__name__} node where LIF neurons must be "
                           f"(IF, CubaLIF and recurrent neurons cannot be realised)")
        w = np.asarray(lin.weight, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != layers[-1]:
            raise NirError(f"{lin_name}: weight of shape {w.shape} after a layer of "
                           f"{layers[-1]} neurons")
        if not np.all(np.isfinite(w)):
            raise NirError(f"{lin_name}: weights are not finite")
        n = w.shape[0]
        if np.any(np.asarray(lif.v_leak) != 0):
            raise NirError(f"{lif_name}: v_leak must be 0 (the membrane decays towards 0)")
        if np.any(np.asarray(lif.v_reset) != 0):
            raise NirError(f"{lif_name}: v_reset must be 0 (reset to zero; subtractive or other "
                           f"resets cannot be realised)")
        r = _uniform(lif.r, "r", lif_name)
        tau = _uniform(lif.tau, "tau", lif_name)
        if r <= 1:
            raise NirError(f"{lif_name}: r = {r} gives no decay in (0, 1) with snnTorch's "
                           f"convention (alpha = 1 - 1/r)")
        if tau <= 0:
            raise NirError(f"{lif_name}: tau must be > 0, got {tau}")
        alphas.append(1 - 1 / r)
        vths.append(_uniform(lif.v_threshold, "v_threshold", lif_name))
        weights.append(w)
        layers.append(n)
    alpha, vth = alphas[0], vths[0]
    if any(abs(a - alpha) > 1e-6 for a in alphas) or any(abs(v - vth) > 1e-9 for v in vths):
        raise NirError(f"the layers have decays {alphas} and thresholds {vths}; the accelerator "
                       f"has one decay and one threshold: retrain with shared values")
    # a decay written as float32 comes back with rounding noise: snap to the nearest value the
    # hardware can realise if it lies within float32 precision, else refuse naming it
    legal = nearest_decay(alpha)
    if abs(legal - alpha) > 1e-6:
        raise NirError(f"the decay alpha = 1 - 1/r = {alpha:.6f} is not a sum of at most 3 "
                       f"signed powers of two, so the hardware cannot decay by shifts and adds; "
                       f"the nearest legal value is {legal} (beta = {legal} in snnTorch)")
    import dataclasses
    scale = 1 << base.w_frac
    vth_legal = round(vth * scale) / scale
    if abs(vth_legal - vth) > 1e-6 * max(1.0, abs(vth)):
        raise NirError(f"the threshold {vth} is not a multiple of the weight LSB 2**-{base.w_frac};"
                       f" use {vth_legal} or change w_frac")
    cfg = dataclasses.replace(base, layers=tuple(layers), alpha=legal,
                              vth=vth_legal).fit_accumulators().validate()
    if mode == "float":
        return weights, cfg
    codes = []
    for l, w in enumerate(weights):
        c = np.rint(w * scale).astype(np.int64)
        lo, hi = smin(cfg.w_bits), smax(cfg.w_bits)
        if c.min(initial=0) < lo or c.max(initial=0) > hi:
            big = float(np.abs(w).max())
            raise NirError(f"layer {l}: weights up to {big:.4g} exceed the {cfg.w_bits}-bit range "
                           f"with {cfg.w_frac} fraction bits ({lo / scale} .. {hi / scale}); "
                           f"lower w_frac or raise w_bits (--set)")
        codes.append(c)
    return codes, cfg


def read_nir(path, base, mode="fixed"):
    """:func:`weights_from_graph` of the graph in file ``path``."""
    import nir
    try:
        graph = nir.read(path)
    except (OSError, KeyError, ValueError) as exc:
        raise NirError(f"{path}: not a readable NIR file ({exc})") from None
    return weights_from_graph(graph, base, mode)
