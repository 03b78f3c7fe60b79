"""The board trains by itself: the on-chip data set, the rate encoder and the training job
(``hdl/job.py``) on the simulated board top (UART link included), bit for bit against the golden
model; host writes that conflict with a running job are refused and reported."""

import numpy as np
import pytest

from spikeforge.fpga.boards import board
from spikeforge.hdl.design import Design
from spikeforge.hdl.params import HwError, HwParams
from spikeforge.model.config import Config
from spikeforge.model.data import DATASET_SAMPLES, DATASET_VMAX, load_dataset
from spikeforge.model.network import Network
from spikeforge.model.train import TrainOptions, epoch_order, job_golden, train
from spikeforge.sim.verify.board import run_job_on_board

DIVISOR = 4          # cycles per UART bit in the tests (the board's own rate in `bench board`)


@pytest.mark.parametrize("name", ["digits", "digits4", "mnist16"])
def test_dataset_sizes_match_the_sets(name):
    data = load_dataset(name)
    assert len(data.x_train) + len(data.x_test) == DATASET_SAMPLES[name]
    assert data.vmax == DATASET_VMAX[name]
    assert max(data.x_train.max(), data.x_test.max()) <= data.vmax


@pytest.mark.parametrize("encoder", ["rate", "latency"])
def test_memmap_packs_samples_and_the_encoder_table(encoder):
    from spikeforge.model.encode import encode
    cfg = Config(layers=(5, 4, 3), timesteps=5, batch=2, target_true=3).fit_accumulators()
    mm = Design(cfg, HwParams(pes=2, data_samples=4, data_vmax=9, encoder=encoder)).memmap
    x = np.array([[0, 9, 3, 4, 5], [1, 2, 3, 4, 9]])
    words = mm.pack_samples(x, [2, 1])
    vb = mm.value_bits
    for row, label, word in zip(x, [2, 1], words):
        fields = mm.data_word.unpack(word)
        assert fields["label"] == label
        assert [(fields["x"] >> (i * vb)) & ((1 << vb) - 1) for i in range(5)] == list(row)
    spikes = encode(x, 5, 9, encoder)
    table = mm.encoder_table()
    for t in range(5):
        for n in range(2):
            for i in range(5):
                assert (table >> (t * (1 << vb) + int(x[n, i]))) & 1 == spikes[t, n, i]
    with pytest.raises(ValueError, match="data_vmax"):
        mm.pack_samples(x + 1, [0, 0])


def test_job_golden_is_the_training_loop(tmp_path):
    """The job's specification (job_golden) trains exactly as `spikeforge train` does."""
    from spikeforge.model.weights import load_weights
    cfg = board("ulx3s-85f").design().cfg
    data = load_dataset("digits")
    n = len(data.x_train)
    metrics = train(cfg, TrainOptions(epochs=2, out=str(tmp_path), progress=False),
                    log=lambda *a: None)
    trained, _ = load_weights(str(tmp_path / "weights.npz"), cfg, "fixed")
    net = Network(cfg, "fixed", seed=0)
    x = np.concatenate([data.x_train, data.x_test])
    y = np.concatenate([data.y_train, data.y_test])
    correct = job_golden(net, x, y, data.vmax, [epoch_order(0, e, n) for e in range(2)], n, n,
                         len(data.x_test))
    assert [h["test_accuracy"] for h in metrics["history"]] == [c / len(data.x_test)
                                                                for c in correct]
    for a, b in zip(trained, net.weights):
        assert np.array_equal(a, b)


def _check_job(design, x, y, orders, train_count, test_base, test_count, seed=3, inject=False):
    net = Network(design.cfg, "fixed", seed=seed)
    start = [w.copy() for w in net.weights]
    got = run_job_on_board(design, DIVISOR, start, x, y, orders, train_count, test_base,
                           test_count, inject=inject)
    want = job_golden(net, x, y, design.hw.data_vmax, orders, train_count, test_base, test_count,
                      encoder=design.hw.encoder)
    assert list(got["correct"]) == want
    for l, w in enumerate(net.weights):
        assert np.array_equal(got[f"w_final_{l}"], w), f"layer {l} weights differ from golden"
    assert got["overrun"] == 0 and got["frame_errors"] == 0 and got["retries"] == 0
    return got


def _random_job(seed, encoder="rate", d_max=40):
    rng = np.random.default_rng(seed)
    T = int(rng.integers(1, 6))
    B = int(rng.integers(1, 4))
    layers = (int(rng.integers(3, 20)), int(rng.integers(2, 12)), int(rng.integers(2, 6)))
    cfg = Config(layers=layers, timesteps=T, batch=B, target_true=T,
                 target_false=0).fit_accumulators()
    vmax = int(rng.integers(1, 40))
    D = int(rng.integers(2 * B + 1, d_max))
    design = Design(cfg, HwParams(pes=int(rng.integers(1, 6)), data_samples=D, data_vmax=vmax,
                                  fe_group=int(rng.integers(1, 5)),
                                  wue_group=int(rng.integers(1, 5)), encoder=encoder))
    x = rng.integers(0, vmax + 1, size=(D, layers[0]))
    y = rng.integers(0, layers[-1], size=D)
    train_count = int(rng.integers(B, D))              # not always a multiple of B
    test_base = int(rng.integers(0, D - 1))
    test_count = int(rng.integers(0, D - test_base + 1))
    orders = [rng.permutation(D)[:train_count] for _ in range(int(rng.integers(1, 4)))]
    return design, x, y, orders, train_count, test_base, test_count


@pytest.mark.parametrize("seed", [0, 1])
def test_random_jobs_on_the_board_top_equal_golden(seed):
    _check_job(*_random_job(seed))


def test_a_streamed_order_trains_as_it_arrives():
    """Orders longer than ORDER_CHUNK: epoch 0's is streamed in chunks after START JOB (the job
    trains on the first chunks while the rest arrives), and still equals golden."""
    from spikeforge.hdl.protocol import ORDER_CHUNK
    job = _random_job(4, d_max=4 * ORDER_CHUNK)
    assert job[4] > 2 * ORDER_CHUNK      # train_count: more than two chunks
    _check_job(*job)


def test_a_latency_coded_job_on_the_board_top_equals_golden():
    """The on-chip latency encoder (hw.encoder=latency) gives the golden model's latency code."""
    design = _random_job(1, "latency")[0]
    assert design.hw.encoder == "latency" and "encoder" in design.to_dict()["hw"]
    _check_job(*_random_job(1, "latency"))


def test_encoder_choices_are_checked():
    with pytest.raises(HwError, match="deterministic"):
        HwParams(data_samples=4, encoder="bernoulli").validate()
    with pytest.raises(HwError, match="data_samples"):
        HwParams(encoder="latency").validate()
    assert "encoder" not in HwParams(data_samples=4).to_dict()   # earlier designs keep their key


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 8))
def test_more_random_jobs_on_the_board_top_equal_golden(seed):
    _check_job(*_random_job(seed))


def test_host_accesses_during_a_job_are_refused_and_reported():
    """Every access that would conflict with the running job is answered Err.REFUSED and has no
    effect: the job still trains exactly as the golden model (epochs long enough that the job is
    still in epoch 0 while the accesses arrive)."""
    cfg = Config(layers=(32, 24, 6), timesteps=4, batch=2, target_true=4).fit_accumulators()
    design = Design(cfg, HwParams(pes=4, data_samples=60, data_vmax=15))
    rng = np.random.default_rng(11)
    x = rng.integers(0, 16, size=(60, 32))
    y = rng.integers(0, 6, size=60)
    orders = [rng.permutation(50) for _ in range(3)]
    got = _check_job(design, x, y, orders, 50, 50, 10, inject=True)
    assert sorted(got["refused"]) == sorted(["order", "x", "labels", "data", "job", "w", "w_read",
                                             "train", "job_start"])


def _digits_job(epochs):
    design = board("ulx3s-85f").design()
    data = load_dataset("digits")
    n = len(data.x_train)
    x = np.concatenate([data.x_train, data.x_test])
    y = np.concatenate([data.y_train, data.y_test])
    orders = [epoch_order(0, e, n) for e in range(epochs)]
    return design, x, y, orders, n, n, len(data.x_test)


def test_digits_trains_two_epochs_on_the_board_top():
    got = _check_job(*_digits_job(2), seed=0)
    assert got["correct"][-1] > 0.8 * 360


@pytest.mark.slow
def test_digits_trains_twenty_epochs_on_the_board_top():
    got = _check_job(*_digits_job(20), seed=0)
    assert got["correct"][-1] > 0.9 * 360


@pytest.mark.slow
def test_train_with_the_board_job_checkpoints_and_resumes(tmp_path):
    """`spikeforge train --engine rtl` on a design with an on-chip data set: the board's job
    trains, a checkpoint every epoch, a resumed run ends bit-identical to an uninterrupted
    golden run (digits4 on a small design)."""
    from spikeforge.model.config import preset
    from spikeforge.model.weights import load_weights
    from spikeforge.sim.host.train import train_rtl
    design = Design(preset("digits4"), HwParams(pes=2, fe_group=2, wue_group=2,
                                                data_samples=DATASET_SAMPLES["digits4"],
                                                data_vmax=DATASET_VMAX["digits4"]))
    cfg = design.cfg
    out = tmp_path / "rtl"
    first = train_rtl(design, TrainOptions(dataset="digits4", epochs=1, out=str(out),
                                           progress=False, checkpoint_every=1))
    assert first["all_weights_matched_golden"] and first["predictions_checked"] == 360
    resumed = train_rtl(design, TrainOptions(dataset="digits4", epochs=2, out=str(out),
                                             progress=False, resume=True, checkpoint_every=1))
    golden_out = tmp_path / "golden"
    golden = train(cfg, TrainOptions(dataset="digits4", epochs=2, out=str(golden_out),
                                     progress=False), log=lambda *a: None)
    assert [h["test_accuracy"] for h in resumed["history"]] == \
        [h["test_accuracy"] for h in golden["history"]]
    got, _ = load_weights(str(out / "weights.npz"), cfg, "fixed")
    want, _ = load_weights(str(golden_out / "weights.npz"), cfg, "fixed")
    for a, b in zip(got, want):
        assert np.array_equal(a, b)
