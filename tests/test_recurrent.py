"""Recurrent LIF layers in the golden model (SPEC 3a/5b): float mode equals torch autograd of the
same equations (spikes identical, dW and dV to 1e-6), snnTorch's RLeaky agrees where its zero reset
has the same form, fixed mode follows its own saturation points, and the files, data sets and
configs around it refuse what they cannot do."""

import numpy as np
import pytest

from spikeforge.model.config import Config, ConfigError
from spikeforge.model.network import Network, init_weights


def cfg_of(layers, T, B, recurrent, **kw):
    return Config(layers=layers, timesteps=T, batch=B, recurrent=recurrent,
                  target_true=T // 2 + 1, **kw).fit_accumulators().validate()


def torch_grads(cfg, weights, x, labels):
    """Spikes and dL/d(W, V) by torch autograd of SPEC 3a: ``u[t] = alpha u[t-1] (1 - o[t-1])
    + W x[t] + V o[t-1]``, the reset detached (no reset gradient), the rectangular surrogate."""
    torch = pytest.importorskip("torch", reason="the cross-check needs torch==2.13.0 "
                                                "(pip install -e '.[dev]')")
    from spikeforge.reports.baselines import rectangular_surrogate
    torch.set_default_dtype(torch.float64)
    try:
        spike = rectangular_surrogate(cfg.window)
        ws = [torch.tensor(w, requires_grad=True) for w in weights]
        rec = {l: ws[cfg.n_layers + k] for k, l in enumerate(cfg.recurrent)}
        T, B, _ = x.shape
        inp_all = torch.tensor(x, dtype=torch.float64)
        spikes = []
        for l in range(cfg.n_layers):
            n = ws[l].shape[0]
            u = torch.zeros(B, n)
            o = torch.zeros(B, n)
            out = []
            for t in range(T):
                i_t = inp_all[t] @ ws[l].T
                if l in rec:
                    i_t = i_t + o @ rec[l].T
                u = cfg.alpha * u * (1 - o.detach()) + i_t
                o = spike(u - cfg.vth)
                out.append(o)
            inp_all = torch.stack(out)
            spikes.append(inp_all)
        counts = spikes[-1].sum(0)
        target = torch.full_like(counts, float(cfg.target_false))
        target[torch.arange(B), torch.tensor(labels)] = float(cfg.target_true)
        loss = 0.5 * ((counts - target) ** 2).sum()
        loss.backward()
        return [s.detach().numpy() for s in spikes], [w.grad.numpy() for w in ws]
    finally:
        torch.set_default_dtype(torch.float32)


CASES = [
    # layers, T, B, recurrent, alpha, gain, seed
    ((10, 20, 6), 8, 4, (0,), 0.5, 2.5, 0),
    ((12, 16, 14, 5), 7, 3, (0, 1), 0.75, 2.5, 1),
    ((8, 24, 10), 10, 5, (0, 1), 0.875, 2.0, 2),
    ((6, 12, 18, 4), 6, 4, (1,), 0.5, 3.0, 3),
]


@pytest.mark.parametrize("layers,T,B,recurrent,alpha,gain,seed", CASES)
def test_recurrent_float_mode_equals_torch_autograd(layers, T, B, recurrent, alpha, gain, seed):
    cfg = cfg_of(layers, T, B, recurrent, alpha=alpha, init_gain=gain)
    rng = np.random.default_rng(seed)
    weights = init_weights(cfg, seed)
    x = (rng.random((T, B, layers[0])) < 0.4).astype(np.int64)
    labels = rng.integers(0, layers[-1], size=B)
    net = Network(cfg, "float", weights=weights)
    traces = net.forward(x)
    grads = net.backward(traces, labels)
    ref_spikes, ref_grads = torch_grads(cfg, weights, x, labels)
    for layer, (tr, ref) in enumerate(zip(traces, ref_spikes)):
        assert np.array_equal(tr.o, ref.astype(np.int64)), f"spikes differ in layer {layer}"
    names = cfg.weight_names()
    assert all(np.abs(g).sum() > 0 for g in ref_grads), "a matrix got no gradient: case too weak"
    # the recurrence must matter: without V the spikes change
    plain = Network(cfg.replace(recurrent=()), "float", weights=weights[:cfg.n_layers])
    assert any(not np.array_equal(a.o, b.o) for a, b in zip(plain.forward(x), traces))
    for name, g, ref in zip(names, grads, ref_grads):
        np.testing.assert_allclose(g, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max(),
                                   err_msg=f"d{name}")


def test_snntorch_rleaky_agrees_where_its_zero_reset_has_the_same_form():
    """snnTorch's ``RLeaky(all_to_all=True, reset_mechanism="zero")`` resets the whole new
    membrane after a spike, ``u[t] = (1 - o[t-1]) (beta u[t-1] + W x[t] + V o[t-1])``; SPEC 3a
    (STBP, H2Learn and snnTorch's own ``Leaky``) resets only the decayed part. Driven step by step
    from the golden model's state, RLeaky must give the same membrane and spikes for every neuron
    that did not spike at ``t-1``, and 0 for those that did."""
    torch = pytest.importorskip("torch", reason="needs torch==2.13.0 (pip install -e '.[dev]')")
    snn = pytest.importorskip("snntorch", reason="needs snntorch (pip install -e '.[dev]')")
    from spikeforge.reports.baselines import rectangular_surrogate
    cfg = cfg_of((10, 24, 4), 12, 6, (0,), alpha=0.75, init_gain=3.0)
    weights = init_weights(cfg, 7)
    x = (np.random.default_rng(7).random((12, 6, 10)) < 0.5).astype(np.int64)
    trace = Network(cfg, "float", weights=weights).forward(x)[0]
    torch.set_default_dtype(torch.float64)
    try:
        lif = snn.RLeaky(beta=cfg.alpha, threshold=cfg.vth, all_to_all=True, linear_features=24,
                         reset_mechanism="zero", spike_grad=rectangular_surrogate(cfg.window))
        with torch.no_grad():
            lif.recurrent.weight.copy_(torch.tensor(weights[cfg.n_layers]))
            lif.recurrent.bias.zero_()
        compared = 0
        for t in range(1, 12):
            cur = torch.tensor(x[t] @ weights[0].T)
            spk, mem = lif(cur, torch.tensor(trace.o[t - 1], dtype=torch.float64),
                           torch.tensor(trace.u[t - 1]))
            fired = trace.o[t - 1] == 1
            np.testing.assert_allclose(mem.detach().numpy()[~fired], trace.u[t][~fired],
                                       rtol=1e-12, atol=1e-12)
            assert np.array_equal(spk.detach().numpy()[~fired], trace.o[t][~fired])
            assert np.all(mem.detach().numpy()[fired] == 0)
            compared += int((~fired).sum())
    finally:
        torch.set_default_dtype(torch.float32)
    assert compared > 500 and trace.o.any()


def test_fixed_mode_saturates_the_recurrent_sum_once():
    """Fixed mode: ``W x[t] + V o[t-1]`` is exact (the forward accumulator holds both) and the
    membrane saturates once; with V at its extreme the membrane pins to its bound."""
    cfg = cfg_of((4, 6, 3), 6, 2, (0,), init_gain=2.0, u_bits=16)
    assert cfg.fwd_acc_needed(0) > Config(layers=(4, 6, 3)).fit_accumulators().fwd_acc_needed(0)
    net = Network(cfg, "fixed", seed=1)
    lo = -(1 << (cfg.w_bits - 1))
    net.weights[0][:] = (1 << (cfg.w_bits - 1)) - 1
    net.weights[cfg.n_layers][:] = lo                     # V of layer 0
    x = np.ones((6, 2, 4), dtype=np.int64)
    tr = net.forward(x)[0]
    # t = 0: W x saturates high and fires; t = 1: decayed 0 + W x + V o = 4*max + 6*min < min
    assert np.all(tr.o[0] == 1)
    assert np.all(tr.u[1] == -(1 << (cfg.u_bits - 1)))


def test_recurrent_fixed_training_step_matches_float_gradients_in_sign():
    """A fixed-mode step and a float step from the same weights move V the same way for the
    bulk of its entries (the fixed backward pass computes dV at all)."""
    cfg = cfg_of((8, 16, 4), 8, 8, (0,), init_gain=3.0)
    rng = np.random.default_rng(3)
    x = (rng.random((8, 8, 8)) < 0.5).astype(np.int64)
    labels = rng.integers(0, 4, size=8)
    fixed = Network(cfg, "fixed", seed=3)
    floatn = Network(cfg, "float", weights=[w / (1 << cfg.w_frac) for w in fixed.weights])
    gf = fixed.backward(fixed.forward(x), labels)[cfg.n_layers]      # dV of layer 0
    gr = floatn.backward(floatn.forward(x), labels)[cfg.n_layers]
    big = np.abs(gr) > np.abs(gr).max() / 4
    assert big.sum() > 5
    assert np.mean(np.sign(gf[big]) == np.sign(gr[big])) > 0.9


def test_config_refuses_bad_recurrent_lists():
    for bad in ((2,), (1, 0), (0, 0), (-1,)):
        with pytest.raises(ConfigError, match="recurrent must list"):
            Config(layers=(8, 16, 4), recurrent=bad).fit_accumulators().validate()
    assert Config().replace(recurrent=0).recurrent == (0,)
    assert "recurrent" not in Config().to_dict()          # feed-forward keys unchanged


def test_weights_file_round_trip_and_mismatch(tmp_path):
    from spikeforge.model.weights import WeightsError, load_weights, save_weights
    cfg = cfg_of((8, 16, 4), 8, 2, (0, 1))
    net = Network(cfg, "fixed", seed=0)
    save_weights(tmp_path / "w.npz", net.weights, cfg, "fixed")
    back, _ = load_weights(tmp_path / "w.npz", cfg, "fixed")
    assert all(np.array_equal(a, b) for a, b in zip(back, net.weights))
    with pytest.raises(WeightsError, match="recurrent"):
        load_weights(tmp_path / "w.npz", cfg.replace(recurrent=(0,)), "fixed")
    with pytest.raises(WeightsError, match="recurrent weights of layer 1"):
        save_weights(tmp_path / "w1.npz", net.weights[:3], cfg.replace(recurrent=(0,)), "fixed")
        load_weights(tmp_path / "w1.npz", cfg, "fixed")


def test_the_accelerator_takes_recurrent_hidden_layers_only():
    from spikeforge.hdl.design import Design, DesignError
    from spikeforge.hdl.params import DEFAULT_HW, RECURRENT_HW, default_hw
    design = Design(cfg_of((8, 16, 4), 8, 2, (0,)), DEFAULT_HW)
    mm = design.memmap
    assert mm.has_rec and mm.vbase[0] == mm.wbase[1] + mm.blocks[1] * 16     # V after every W
    assert {"r", "hr"} <= set(mm.memories)
    with pytest.raises(DesignError, match="output layer"):
        Design(cfg_of((8, 16, 4), 8, 2, (1,)), DEFAULT_HW)
    assert default_hw(design.cfg) == RECURRENT_HW
    assert default_hw(cfg_of((8, 16, 4), 8, 2, ())) == DEFAULT_HW


def test_sequence_encoding_is_frame_by_frame():
    from spikeforge.model.data import load_dataset
    d = load_dataset("digits_rows")
    assert d.steps == 8 and d.n_features == 8
    x = d.encode(d.x_train[:4], 16)
    assert x.shape == (16, 4, 8)
    # row r occupies ticks 2r, 2r+1: a full-intensity pixel spikes in both, a blank in neither
    for r in range(8):
        row = d.x_train[:4, 8 * r:8 * r + 8]
        assert np.array_equal(x[2 * r:2 * r + 2].sum(0), row * 2 // 16)
    with pytest.raises(ValueError, match="multiples of 8"):
        d.encode(d.x_train[:4], 12)
    with pytest.raises(ConfigError, match="multiple of 8"):
        d.check_network(Config(layers=(8, 16, 10), timesteps=12).fit_accumulators())


def test_mnist1d_is_generated_without_touching_the_global_generators():
    from spikeforge.model.data import MNIST1D_LEVELS, load_dataset
    np.random.seed(5)
    before = np.random.random()
    np.random.seed(5)
    d = load_dataset("mnist1d")
    assert np.random.random() == before
    assert d.steps == 40 and d.n_features == MNIST1D_LEVELS
    assert len(d.x_train) == 4000 and len(d.x_test) == 1000 and d.n_classes == 10
    assert 0.3 < d.x_train.mean() < 0.7


def test_exports_refuse_what_they_do_not_carry():
    from spikeforge.model.nir_io import NirError, graph_from_weights
    cfg = cfg_of((8, 16, 4), 8, 2, (0,))
    with pytest.raises(NirError, match="recurrent layers"):
        graph_from_weights(Network(cfg, "fixed").weights, cfg)
    cfg = Config(layers=(8, 16, 4), fan_in=4).fit_accumulators()
    with pytest.raises(NirError, match="deployed.npz"):
        graph_from_weights(Network(cfg, "fixed").weights, cfg)


@pytest.mark.slow
def test_bench_recurrence_runs_three_networks_bit_exact():
    """``spikeforge bench recurrence`` on a small recurrent design: all three networks match the
    golden model (the bench raises otherwise) and the recurrent one costs more cycles."""
    from spikeforge.hdl.design import Design
    from spikeforge.hdl.params import RECURRENT_HW
    from spikeforge.model.config import preset
    from spikeforge.sim.bench.recurrence import run
    cfg = preset("digits_rows").replace(layers=(8, 24, 10)).fit_accumulators()
    r = run(Design(cfg, RECURRENT_HW.replace(pes=8)), "digits_rows", steps=2)
    assert all(r[k]["weights_match_golden"] for k in ("recurrent", "feedforward", "same_synapses"))
    assert r["same_synapses"]["synapses"] == r["recurrent"]["synapses"] == 24 * 32 + 24 * 10
    assert r["cost_vs_feedforward"] > 1 and r["cost_vs_same_synapses"] > 1
