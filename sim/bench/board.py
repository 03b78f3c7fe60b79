"""``spikeforge bench board --board NAME``: a training job on the simulated board top, end to end.

What is simulated: the board's own design behind its UART at the board's baud rate and clock
(:class:`~spikeforge.sim.verify.board.LinkedBoard`: the host's serial bits, the board's UART
receiver, host bridge, on-chip data set, rate encoder, training job and accelerator, the UART
transmitter), driven by the same host driver as a real board (Verilator via cocotb).

What is measured, and how:

1. The data set (the preset's, training samples then test samples) is uploaded once:
   ``upload_seconds`` (bytes x 10 bits / baud, as simulated).
2. Two jobs of ``EPOCHS`` epochs from the same initial weights, with the orders of
   ``model/train.py`` (seed 0): the *training job* (no test pass) and the *job with test passes*
   (the test set inferred on chip after every epoch, as ``spikeforge train`` reports accuracy).
   Each job's time is what the host sees: from the first order byte sent to the answer of
   ``WAIT JOB``, order uploads of later epochs and the host's waits included; reading the weights
   back afterwards is timed apart (``readback_seconds``).
3. ``end_to_end_samples_per_s`` = training samples of the training job / its time;
   ``end_to_end_with_test_samples_per_s`` the same for the job with test passes;
   ``compute_samples_per_s`` = training samples / the accelerator's ``active_cycles`` during the
   training job (the accelerator alone, in the same run); all at the board's clock.
4. Both jobs' weights and the per-epoch correct counts must equal the golden model's
   (``model.train.job_golden``) or the bench fails.
"""

import numpy as np

__all__ = ["run", "EPOCHS"]

EPOCHS = 2


def run(design, dataset, simulator="verilator", board_name=None, epochs=EPOCHS, clock_mhz=None):
    from spikeforge.fpga.boards import board
    from spikeforge.hdl.uart import divisor_for
    from spikeforge.model.data import load_dataset
    from spikeforge.model.network import Network
    from spikeforge.model.train import epoch_order, job_golden
    from spikeforge.sim.verify.board import run_jobs_on_board

    if board_name is None:
        raise ValueError("bench board needs --board NAME (its clock, baud rate and design)")
    if simulator == "amaranth":
        raise ValueError("bench board runs on the generated Verilog: use --simulator verilator "
                         "or icarus")
    target = board(board_name)
    if clock_mhz is not None:
        target = target.with_clock(clock_mhz)
    if not design.memmap.has_data:
        raise ValueError(f"board {board_name}'s design {design.key()} holds no data set on "
                         f"chip (hw.data_samples = 0): the host streams every batch; use a "
                         f"board that trains by itself or --hw data_samples=N")
    clock_hz = target.clock_hz()
    baud = target.baud
    divisor = divisor_for(clock_hz, baud)
    data = load_dataset(dataset)
    data.check_network(design.cfg)
    n_train, n_test = len(data.x_train), len(data.x_test)
    x = np.concatenate([data.x_train, data.x_test])
    y = np.concatenate([data.y_train, data.y_test])
    if len(x) > design.hw.data_samples:
        raise ValueError(f"{dataset} has {len(x)} samples, the design holds "
                         f"{design.hw.data_samples}")
    orders = [epoch_order(0, e, n_train) for e in range(epochs)]
    jobs = [(n_train, n_train, 0, epochs), (n_train, n_train, n_test, epochs)]
    start = Network(design.cfg, "fixed", seed=0)
    weights = [w.copy() for w in start.weights]
    res = run_jobs_on_board(design, divisor, weights, x, y, orders, jobs, simulator=simulator)
    for j, (_, _, test_count, _) in enumerate(jobs):
        golden = Network(design.cfg, "fixed", weights=[w.copy() for w in weights])
        want = job_golden(golden, x, y, data.vmax, orders, n_train, n_train, test_count,
                          encoder=design.hw.encoder)
        for l, w in enumerate(golden.weights):
            if not np.array_equal(res[f"w_final{j}_{l}"], w):
                raise AssertionError(f"job {j}: weights of layer {l} differ from the golden model")
        if test_count and list(res[f"correct{j}"]) != want:
            raise AssertionError(f"job {j}: correct counts {list(res[f'correct{j}'])} differ "
                                 f"from the golden model's {want}")
    if res["overrun"] or res["frame_errors"] or res["retries"]:
        raise AssertionError("the link lost or damaged bytes (the host's UART saw an overrun or "
                             "a frame error, or frames were repeated)")
    B = design.cfg.batch
    samples = (n_train // B) * B * epochs
    s = 1.0 / clock_hz
    job, job_test = float(res["cycles_job0"]), float(res["cycles_job1"])
    active = res["counters0"]["active_cycles"]
    e2e = samples / (job * s)
    compute = samples / (active * s)
    return {
        "board": board_name,
        "clock_hz": clock_hz,
        "baud": baud,
        "uart_divisor": divisor,
        "epochs": epochs,
        "train_samples": samples,
        "test_samples": n_test,
        "end_to_end_samples_per_s": e2e,
        "end_to_end_with_test_samples_per_s": samples / (job_test * s),
        "compute_samples_per_s": compute,
        "end_to_end_over_compute": e2e / compute,
        "job_seconds": job * s,
        "job_with_test_seconds": job_test * s,
        "readback_seconds": float(res["cycles_readback0"]) * s,
        "upload_seconds": float(res["cycles_upload"]) * s,
        "upload_bytes": int(res["bytes_upload"]),
        "compute_cycles_per_sample": active / samples,
        "job_cycles_per_sample": job / samples,
        "test_correct_per_epoch": [int(v) for v in res["correct1"]],
        "test_accuracy_per_epoch": [int(v) / n_test for v in res["correct1"]],
        "weights_match_golden": True,
        "counters": res["counters0"],
        "sim_wall_seconds": float(res["wall_seconds"]),
        "hw": design.hw.to_dict(),
        "design": design.key(),
        "data": f"{dataset}: {n_train} training + {n_test} test samples on chip, {design.hw.encoder} code, "
                f"orders of model/train.py (seed 0), golden initial weights (seed 0)",
        "method": "RTL of the board top with its UARTs and a host-side UART pair (Verilator via "
                  "cocotb), the board's clock and baud rate; see spikeforge.sim.bench.board",
    }
