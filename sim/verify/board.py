"""The board top in simulation: the accelerator behind its UARTs, with a host-side UART pair.

:class:`LinkedBoard` is what a board runs (:class:`~spikeforge.hdl.board.UartCore`: UART receiver,
host bridge, accelerator, UART transmitter) wired pin to pin to a host-side
:class:`~spikeforge.hdl.uart.UARTTx`/:class:`~spikeforge.hdl.uart.UARTRx` pair, so a byte the host
driver sends travels as serial bits at ``divisor`` cycles per bit, exactly as over the board's
USB-serial bridge. Its ``rx``/``tx`` byte streams take the same
:class:`~spikeforge.sim.host.cocotb_io.CocotbTransport` as the accelerator's own.

:func:`run_job_on_board` runs :mod:`spikeforge.sim.verify.tb_job` on it: upload the data set,
run a training job of several epochs, read weights and the per-epoch test counts back.
"""

import json
import os
import tempfile

import numpy as np
from amaranth import ClockDomain, ClockSignal, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.hdl.board import UartCore
from spikeforge.hdl.top import Accelerator
from spikeforge.hdl.uart import UARTRx, UARTTx

from .harness import build_harness_verilog
from .runner import run_testbench
from .top import VERILATOR_FAST

__all__ = ["LinkedBoard", "board_verilog", "run_jobs_on_board", "run_job_on_board"]


class LinkedBoard(wiring.Component):
    """Host byte streams -> host UART -> board (UART, bridge, accelerator) -> host UART."""

    def __init__(self, design, divisor):
        self.design, self.divisor = design, divisor
        self.board = UartCore(Accelerator(design), divisor)
        self.host_tx, self.host_rx = UARTTx(divisor), UARTRx(divisor)
        super().__init__({"clk": In(1), "rx": In(stream.Signature(8)),
                          "tx": Out(stream.Signature(8)), "overrun": Out(1),
                          "frame_errors": Out(8)})

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync", reset_less=True)
        m.d.comb += ClockSignal("sync").eq(self.clk)
        m.submodules.board = self.board
        m.submodules.host_tx = self.host_tx
        m.submodules.host_rx = self.host_rx
        wiring.connect(m, wiring.flipped(self.rx), self.host_tx.inp)
        wiring.connect(m, self.host_rx.out, wiring.flipped(self.tx))
        m.d.comb += [self.board.rx.eq(self.host_tx.tx), self.host_rx.rx.eq(self.board.tx),
                     self.overrun.eq(self.host_rx.overrun),
                     self.frame_errors.eq(self.host_rx.frame_errors)]
        return m


def board_verilog(design, divisor):
    return build_harness_verilog(lambda: LinkedBoard(design, divisor), "sf_board", design,
                                 f"_div{divisor}")


def run_jobs_on_board(design, divisor, weights, x, y, orders, jobs, simulator="verilator",
                      log_to_console=False, inject=False):
    """Simulate training jobs on the linked board (the data set uploaded once, each job from
    ``weights``); ``jobs`` holds (train_count, test_base, test_count, epochs) rows. Returns the
    testbench's arrays as a dict (see :mod:`spikeforge.sim.verify.tb_job`), counters decoded."""
    path, directory = board_verilog(design, divisor)
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        arrays = {"x": np.asarray(x), "y": np.asarray(y), "orders": np.asarray(orders),
                  "jobs": np.array(jobs, dtype=np.int64).reshape(-1, 4), "inject": int(inject)}
        arrays.update({f"w{l}": np.asarray(w) for l, w in enumerate(weights)})
        np.savez(inp, **arrays)
        run_testbench(design, [path], "sf_board", "spikeforge.sim.verify.tb_job",
                      os.path.join(directory, simulator), inp, out, simulator=simulator,
                      public_top_only=True, build_args=VERILATOR_FAST,
                      log_to_console=log_to_console)
        result = dict(np.load(out))
    for j in range(len(arrays["jobs"])):
        result[f"counters{j}"] = json.loads(str(result[f"counters{j}"]))
    return result


def run_job_on_board(design, divisor, weights, x, y, orders, train_count, test_base, test_count,
                     **options):
    """One job of ``len(orders)`` epochs; the result's keys without the job number."""
    res = run_jobs_on_board(design, divisor, weights, x, y, orders,
                            [(train_count, test_base, test_count, len(orders))], **options)
    for key in list(res):
        if key.startswith("w_final0_"):
            res["w_final_" + key[len("w_final0_"):]] = res[key]
        elif key.endswith("0") and key[:-1] in ("correct", "cycles_job", "epoch_cycles",
                                                "counters", "cycles_readback"):
            res[key[:-1]] = res[key]
    return res
