"""Train a spiking network on your own numpy arrays with spikeforge's Python API, then check the
accelerator's RTL predicts the same classes.

    python examples/train_on_your_arrays.py [--epochs N] [--rtl]

The arrays here are scikit-learn's wine data (13 features, 3 classes), min-max scaled to [0, 1];
replace ``load_arrays`` with your own. Everything the example does is also a `spikeforge` command
(`train --data`, `infer`).
"""

import argparse
import os
import tempfile

import numpy as np

from spikeforge.hdl.design import Design
from spikeforge.hdl.params import HwParams
from spikeforge.model.config import preset
from spikeforge.model.data import load_npz_dataset
from spikeforge.model.encode import encode
from spikeforge.model.network import Network
from spikeforge.model.train import TrainOptions, train
from spikeforge.model.weights import load_weights


def load_arrays():
    from sklearn.datasets import load_wine
    x, y = load_wine(return_X_y=True)
    x = (x - x.min(0)) / (x.max(0) - x.min(0))
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    n = int(0.8 * len(x))
    return x[:n], y[:n], x[n:], y[n:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--rtl", action="store_true", help="also predict on the RTL (Verilator)")
    ap.add_argument("--out", default=None, help="output directory (default: a temporary one)")
    args = ap.parse_args()

    out = args.out or tempfile.mkdtemp(prefix="spikeforge_example_")
    x_train, y_train, x_test, y_test = load_arrays()
    data_path = os.path.join(out, "wine.npz")
    os.makedirs(out, exist_ok=True)
    np.savez(data_path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)

    # the network: the digits preset's neuron and number formats, 13 inputs, 32 hidden, 3 outputs
    cfg = preset("digits").replace(layers=(13, 32, 3), batch=8).fit_accumulators()
    metrics = train(cfg, TrainOptions(dataset=data_path, epochs=args.epochs, out=out,
                                      progress=False), log=lambda *a: None)
    print(f"golden model: test accuracy {metrics['test_accuracy']:.3f} after {args.epochs} "
          f"epochs")

    if args.rtl:
        from spikeforge.sim.host.train import infer_rtl
        weights, _ = load_weights(os.path.join(out, "weights.npz"), cfg, "fixed")
        data = load_npz_dataset(data_path)
        spikes = encode(data.x_test, cfg.timesteps, data.vmax, "rate")
        pred = infer_rtl(Design(cfg, HwParams(pes=4)), weights, spikes)
        golden = Network(cfg, "fixed", weights=weights).predict(spikes)
        assert np.array_equal(pred, golden), "the RTL and the golden model disagree"
        print(f"RTL: the same {len(pred)} predictions, accuracy {(pred == data.y_test).mean():.3f}")
    return metrics


if __name__ == "__main__":
    main()
