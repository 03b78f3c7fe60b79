"""``spikeforge train --engine board``: train on a real board over its UART.

The board runs the bitstream of ``spikeforge synth`` (the accelerator behind a UART bridge); this
module opens the serial port, checks the accelerator answers ``IDENT``, and drives the ordinary
training loop through the same host driver and golden cross-check as ``--engine rtl``.
"""

import asyncio

from .accel import AcceleratorDriver, AcceleratorGeometry
from .host import ProtocolError
from .rtl_engine import RtlEngine

__all__ = ["SerialTransport", "train_board"]


class SerialTransport:
    """Byte transport over a serial port (pyserial), with a timeout per reply."""

    def __init__(self, port, baud, timeout=30.0):
        try:
            import serial
        except ImportError:
            raise ProtocolError("pyserial is not installed: pip install pyserial") from None
        try:
            self.serial = serial.Serial(port, baud, timeout=timeout)
        except (serial.SerialException, OSError) as exc:
            raise ProtocolError(f"cannot open serial port {port}: {exc}; check the cable, the "
                                f"port name (--port) and permissions") from None

    async def send(self, data):
        self.serial.write(data)

    async def recv(self, n):
        data = self.serial.read(n)
        if len(data) != n:
            raise ProtocolError(f"the board answered {len(data)} of {n} bytes before the "
                                f"timeout; is the spikeforge bitstream loaded, and the baud "
                                f"rate right?")
        return data


def train_board(cfg, hw, opts, port, baud=115200):
    from spikeforge.model.train import train

    if not port:
        raise ProtocolError("--engine board needs --port (e.g. /dev/ttyUSB0)")
    loop = asyncio.new_event_loop()
    run = loop.run_until_complete
    transport = SerialTransport(port, baud)
    driver = AcceleratorDriver(transport, AcceleratorGeometry(cfg, hw))
    ident = run(driver.host.ident())
    expected = len(driver.geo.targets)
    if ident["memories"] != expected or ident["counters"] != len(driver.geo.counters):
        raise ProtocolError(f"the board's accelerator has {ident} but this configuration "
                            f"expects {expected} memories and {len(driver.geo.counters)} "
                            f"counters: synthesise it for the same preset and --hw")
    engine = RtlEngine(driver, cfg, run, seed=opts.seed)
    opts.engine_name = "board"
    metrics = train(cfg, opts, engine=engine)
    metrics.update({"weights_checked_steps": engine.steps_checked,
                    "predictions_checked": engine.predictions_checked,
                    "all_weights_matched_golden": True, "port": port, "baud": baud})
    return metrics
