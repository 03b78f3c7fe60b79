"""Golden model behaviour: saturation, reproducibility, encoders, data, config validation."""

import numpy as np
import pytest

from spikeforge.model.config import Config, ConfigError, preset
from spikeforge.model.data import area_resize, load_dataset
from spikeforge.model.encode import encode
from spikeforge.model.fixedpoint import smax, smin
from spikeforge.model.network import Network


def tiny(**kw):
    base = dict(layers=(6, 5, 3), timesteps=4, batch=2, w_bits=8, w_frac=4, u_bits=10,
                e_bits=8, e_frac=2, init_gain=2.0, target_true=3)
    base.update(kw)
    return Config(**base).fit_accumulators().validate()


def test_membrane_saturates_instead_of_wrapping():
    cfg = tiny()
    w = [np.full((5, 6), smax(8), dtype=np.int64), np.full((3, 5), smin(8), dtype=np.int64)]
    net = Network(cfg, "fixed", weights=w)
    x = np.ones((4, 2, 6), dtype=np.int64)
    traces = net.forward(x)
    # 6 * 127 = 762 fits 10 bits (max 511)? no: it saturates at 511, never wraps negative
    assert traces[0].u.max() == smax(cfg.u_bits)
    assert traces[0].u.min() > 0
    assert traces[0].o.all()
    # layer 1 gets 5 * -128 = -640 per step: saturates at -512, never wraps positive
    assert traces[1].u.min() == smin(cfg.u_bits)
    assert traces[1].u.max() < 0


def test_gradients_and_weights_saturate():
    cfg = tiny(e_bits=6, e_frac=3, lr=2.0 ** 4, target_true=4, target_false=0)
    net = Network(cfg, "fixed", weights=[np.full((5, 6), 40, dtype=np.int64),
                                         np.full((3, 5), 5, dtype=np.int64)])
    x = np.ones((4, 2, 6), dtype=np.int64)
    traces = net.forward(x)
    grads = net.backward(traces, [0, 1])
    # (count - target) << 3 exceeds the 6-bit range: the output dL/do saturates
    g = traces[-1].g
    assert g.max() <= smax(6) and g.min() >= smin(6)
    assert (np.abs(g) == smax(6)).any() or (g == smin(6)).any()
    assert all(np.abs(tr.eps).max() <= -smin(6) for tr in traces)
    net.update(grads)
    for w in net.weights:
        assert w.max() <= smax(8) and w.min() >= smin(8)
    assert (net.weights[1] == smin(8)).any() or (net.weights[1] == smax(8)).any()


def test_same_seed_same_weights_bit_for_bit(tmp_path):
    from spikeforge.model.train import TrainOptions, train
    cfg = preset("digits")
    runs = []
    for name in ("a", "b"):
        opts = TrainOptions(dataset="digits", epochs=1, seed=3, out=str(tmp_path / name),
                            progress=False)
        runs.append(train(cfg, opts, log=lambda *_: None))
    wa = np.load(tmp_path / "a" / "weights.npz")
    wb = np.load(tmp_path / "b" / "weights.npz")
    for key in ("w0", "w1"):
        assert wa[key].dtype == np.int64
        assert np.array_equal(wa[key], wb[key])
    assert runs[0]["test_accuracy"] == runs[1]["test_accuracy"]
    # a different seed gives different weights
    opts = TrainOptions(dataset="digits", epochs=1, seed=4, out=str(tmp_path / "c"),
                        progress=False)
    train(cfg, opts, log=lambda *_: None)
    assert not np.array_equal(wa["w0"], np.load(tmp_path / "c" / "weights.npz")["w0"])


def test_resume_equals_uninterrupted(tmp_path):
    from spikeforge.model.train import TrainOptions, train
    cfg = preset("digits")
    quiet = dict(progress=False)
    train(cfg, TrainOptions(epochs=2, seed=1, out=str(tmp_path / "full"), **quiet),
          log=lambda *_: None)
    train(cfg, TrainOptions(epochs=1, seed=1, out=str(tmp_path / "part"), **quiet),
          log=lambda *_: None)
    m = train(cfg, TrainOptions(epochs=2, seed=1, out=str(tmp_path / "part"), resume=True,
                                **quiet), log=lambda *_: None)
    assert [h["epoch"] for h in m["history"]] == [1, 2]
    a = np.load(tmp_path / "full" / "weights.npz")
    b = np.load(tmp_path / "part" / "weights.npz")
    assert np.array_equal(a["w0"], b["w0"]) and np.array_equal(a["w1"], b["w1"])


def test_fixed_tracks_float_with_wide_formats():
    cfg = tiny(w_bits=24, w_frac=18, u_bits=28, e_bits=24, e_frac=14).fit_accumulators()
    rng = np.random.default_rng(0)
    x = (rng.random((4, 2, 6)) < 0.5).astype(np.int64)
    fl = Network(cfg, "float", seed=0)
    fx = Network(cfg, "fixed", seed=0)
    tf, tx = fl.forward(x), fx.forward(x)
    for a, b in zip(tf, tx):
        np.testing.assert_allclose(a.u, b.u / 2.0 ** 18, atol=1e-4)


# ---- encoders and data --------------------------------------------------------------------

def test_rate_encoder_counts_and_determinism():
    x = np.array([[0, 4, 8, 16], [16, 12, 2, 1]])
    s = encode(x, 8, 16, "rate")
    assert s.shape == (8, 2, 4) and s.dtype == np.uint8
    assert s.sum(axis=0).tolist() == [[0, 2, 4, 8], [8, 6, 1, 0]]
    assert np.array_equal(s, encode(x, 8, 16, "rate", seed=99))


def test_bernoulli_reproducible_and_rate():
    x = np.full((200, 50), 8)
    a = encode(x, 8, 16, "bernoulli", seed=1)
    assert np.array_equal(a, encode(x, 8, 16, "bernoulli", seed=1))
    assert not np.array_equal(a, encode(x, 8, 16, "bernoulli", seed=2))
    assert abs(a.mean() - 0.5) < 0.01


def test_latency_encoder():
    s = encode(np.array([[16, 8, 0, 1]]), 8, 16, "latency")
    assert s.sum(axis=0).tolist() == [[1, 1, 0, 1]]
    assert np.argmax(s[:, 0, :3], axis=0).tolist()[:2] == [0, 4]


def test_encoder_errors():
    with pytest.raises(ValueError, match="unknown encoder"):
        encode(np.zeros((1, 2), int), 4, 16, "morse")
    with pytest.raises(ValueError, match="0..16"):
        encode(np.array([[17]]), 4, 16)


def test_datasets_are_real_and_split():
    d = load_dataset("digits")
    assert d.x_train.shape == (1437, 64) and d.x_test.shape == (360, 64)
    assert d.x_train.max() == 16 and sorted(set(d.y_test)) == list(range(10))
    m = load_dataset("mnist16")
    assert m.x_train.shape == (4000, 256) and m.x_test.shape == (1000, 256)
    assert m.x_train.max() <= 255 and m.x_train.max() > 200
    assert np.bincount(m.y_test, minlength=10).min() > 60     # shuffled, not sorted by class
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")


def test_area_resize_preserves_mean():
    img = np.random.default_rng(0).random((3, 28, 28))
    small = area_resize(img, 16)
    assert small.shape == (3, 16, 16)
    np.testing.assert_allclose(small.mean(axis=(1, 2)), img.mean(axis=(1, 2)), rtol=1e-12)


# ---- config validation --------------------------------------------------------------------

@pytest.mark.parametrize("changes,match", [
    (dict(fwd_acc_bits=20), r"fwd_acc_bits=20 cannot hold layer 1's worst-case sum.*>= 23"),
    (dict(bwd_acc_bits=30), r"bwd_acc_bits=30 .*>= 39"),
    (dict(wgrad_acc_bits=16), r"wgrad_acc_bits=16 .*>= 23"),
    (dict(alpha=0.3), r"alpha=0.3 is not a sum of at most 3 signed powers of two"),
    (dict(alpha=1.5), r"alpha must be in \(0, 1\]"),
    (dict(lr=0.001), r"lr=0.001 is not a sum of at most 2"),
    (dict(vth=1.0001), r"vth=1.0001 is not a multiple of the weight LSB"),
    (dict(window=2 ** -14), r"window/2=.* not a multiple"),
    (dict(w_frac=16), r"w_frac must be in 0..w_bits-1"),
    (dict(u_bits=12), r"u_bits must be in w_bits"),
    (dict(e_frac=20), r"e_frac must be in"),
    (dict(timesteps=0), r"timesteps must be >= 1"),
    (dict(batch=0), r"batch must be >= 1"),
    (dict(target_true=9), r"spike-count targets must be in 0..timesteps"),
    (dict(layers=(64,)), r"layers must be at least 2 positive ints"),
    (dict(w_bits=40), r"w_bits must be in 2..32"),
    (dict(init_gain=0), r"init_gain must be > 0"),
    (dict(timesteps=8.0), r"timesteps must be an int"),
])
def test_config_errors_name_the_fix(changes, match):
    with pytest.raises(ConfigError, match=match):
        preset("digits").replace(**changes)


def test_unknown_preset_and_fields():
    with pytest.raises(ConfigError, match="unknown preset 'cifar'"):
        preset("cifar")
    with pytest.raises(ConfigError, match=r"unknown config fields \['bogus'\]"):
        Config.from_dict({"bogus": 1})


def test_config_roundtrip():
    cfg = preset("mnist16")
    assert Config.from_dict(cfg.to_dict()) == cfg
    assert cfg.alpha_terms == ((1, 1),) and cfg.vth_int == 4096


def test_input_shape_error():
    net = Network(preset("digits"), "fixed")
    with pytest.raises(ValueError, match=r"shape \(T, B, 64\)"):
        net.forward(np.zeros((8, 2, 63)))
