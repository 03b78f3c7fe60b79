"""Networks in and out through NIR: round trip bit for bit, snnTorch's own export imports with the
same float-mode spikes, and what the hardware cannot realise is refused with what to change."""

import numpy as np
import pytest

from spikeforge.model.config import preset
from spikeforge.model.network import Network

nir = pytest.importorskip("nir")


def _trained(tmp_path, mode="fixed"):
    from spikeforge.model.weights import save_weights
    cfg = preset("digits")
    net = Network(cfg, mode, seed=4)
    path = tmp_path / "w.npz"
    save_weights(str(path), net.weights, cfg, mode)
    return path, cfg, net.weights


def test_export_import_round_trip_is_bit_identical(tmp_path):
    from spikeforge.cli.main import main
    from spikeforge.model.weights import load_weights_file
    path, cfg, weights = _trained(tmp_path)
    out = tmp_path / "n.nir"
    assert main(["export", str(path), "--nir", str(out)]) == 0
    graph = nir.read(str(out))
    lifs = [n for n in graph.nodes.values() if isinstance(n, nir.LIF)]
    assert len(lifs) == cfg.n_layers
    assert np.allclose(lifs[0].r, 1 / (1 - cfg.alpha)) and np.all(lifs[0].v_reset == 0)
    back = tmp_path / "back.npz"
    assert main(["import", "--nir", str(out), "--out", str(back)]) == 0
    got, got_cfg, mode = load_weights_file(str(back))
    assert mode == "fixed" and got_cfg.layers == cfg.layers and got_cfg.alpha == cfg.alpha
    assert got_cfg.vth == cfg.vth
    for a, b in zip(got, weights):
        assert a.dtype == np.int64 and np.array_equal(a, b)


def test_snntorch_export_imports_with_the_same_float_spikes(tmp_path):
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    pytest.importorskip("nirtorch")
    from snntorch.export_nir import export_to_nir

    from spikeforge.model.nir_io import weights_from_graph
    torch.manual_seed(0)
    beta, vth = 0.75, 0.5


    def leaky(n, **kw):
        # per-neuron parameters: snnTorch's export of scalar ones has no shape for NIR's type
        # inference (a known snnTorch/NIR issue)
        return snn.Leaky(beta=torch.full((n,), beta), threshold=torch.full((n,), vth),
                         reset_mechanism="zero", init_hidden=True, **kw)

    model = torch.nn.Sequential(torch.nn.Linear(12, 9, bias=False), leaky(9),
                                torch.nn.Linear(9, 4, bias=False), leaky(4, output=True))
    graph = export_to_nir(model, torch.zeros(12))
    weights, cfg = weights_from_graph(graph, preset("digits"), mode="float")
    assert cfg.layers == (12, 9, 4) and cfg.alpha == beta and cfg.vth == vth
    rng = np.random.default_rng(1)
    x = (rng.random((8, 5, 12)) < 0.4).astype(np.float64)       # T, B, n_in
    net = Network(cfg, "float", weights=weights)
    ours = net.forward(x)
    # snnTorch, step by step over the same spikes
    with torch.no_grad():
        from snntorch import utils as snn_utils
        snn_utils.reset(model)
        spikes = []
        for t in range(x.shape[0]):
            spk, _ = model(torch.tensor(x[t], dtype=torch.float32))
            spikes.append(spk.numpy())
    theirs = np.stack(spikes)
    assert theirs.sum() > 0                       # the comparison is not of silence
    assert np.array_equal(ours[-1].o, theirs.astype(np.int64))


@pytest.mark.parametrize("change, message", [
    ("bias", "bias=False"),
    ("leak", "v_leak must be 0"),
    ("reset", "v_reset must be 0"),
    ("decay", "nearest legal value is"),
    ("big", "exceed the 16-bit range"),
    ("threshold", "multiple of the weight LSB"),
])
def test_import_refuses_what_the_hardware_cannot_realise(tmp_path, change, message):
    from spikeforge.model.nir_io import DT, NirError, graph_from_weights, weights_from_graph
    cfg = preset("digits")
    weights = Network(cfg, "fixed", seed=1).weights
    graph = graph_from_weights(weights, cfg)
    lin, lif = graph.nodes["fc0"], graph.nodes["lif0"]
    if change == "bias":
        graph.nodes["fc0"] = nir.Affine(weight=lin.weight, bias=np.ones(lin.weight.shape[0]))
    elif change == "leak":
        lif.v_leak[:] = 0.1
    elif change == "reset":
        lif.v_reset[:] = -0.5
    elif change == "decay":
        for name in ("lif0", "lif1"):
            n = graph.nodes[name]
            n.r[:] = 1 / (1 - 0.83)
            n.tau[:] = n.r * DT
    elif change == "big":
        lin.weight[0, 0] = 100.0
    elif change == "threshold":
        for name in ("lif0", "lif1"):
            graph.nodes[name].v_threshold[:] = 1.0 + 1e-5
    with pytest.raises(NirError, match=message):
        weights_from_graph(graph, cfg)


def test_snntorch_module_out_and_in(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("snntorch")
    from snntorch import utils as snn_utils

    from spikeforge.model.snntorch_io import from_snntorch, to_snntorch
    from spikeforge.model.fixedpoint import smax, smin
    cfg = preset("digits")
    # initial weights scaled up so that the output layer spikes
    net = Network(cfg, "fixed", seed=2)
    net.weights = [np.clip(w * 6, smin(cfg.w_bits), smax(cfg.w_bits)) for w in net.weights]
    module = to_snntorch(net.weights, cfg)
    rng = np.random.default_rng(3)
    x = (rng.random((cfg.timesteps, 6, cfg.layers[0])) < 0.3).astype(np.int64)
    float_net = Network(cfg, "float", weights=[w / (1 << cfg.w_frac) for w in net.weights])
    ours = float_net.forward(x)[-1].o
    with torch.no_grad():
        snn_utils.reset(module)
        theirs = np.stack([module(torch.tensor(x[t], dtype=torch.float32))[0].numpy()
                           for t in range(cfg.timesteps)]).astype(np.int64)
    assert theirs.sum() > 0 and np.array_equal(ours, theirs)
    back, back_cfg = from_snntorch(module, cfg)
    assert back_cfg.layers == cfg.layers and back_cfg.alpha == cfg.alpha
    for a, b in zip(back, net.weights):
        assert np.array_equal(a, b)
    import snntorch as snn
    from spikeforge.model.nir_io import NirError
    with pytest.raises(NirError, match="bias=False"):
        from_snntorch(torch.nn.Sequential(torch.nn.Linear(4, 3),
                                          snn.Leaky(beta=0.5, reset_mechanism="zero")), cfg)
    with pytest.raises(NirError, match="reset_mechanism='zero'"):
        from_snntorch(torch.nn.Sequential(torch.nn.Linear(4, 3, bias=False),
                                          snn.Leaky(beta=0.5)), cfg)
