"""Byte transports of the host protocol: ``async send(bytes)`` and ``async recv(n) -> bytes``.

- :class:`AmaranthTransport`: the bridge's byte streams inside an Amaranth async testbench;
- :class:`AmaranthUartTransport`: UART pins inside an Amaranth simulation (bit-level, 8N1);
- :class:`SerialTransport`: a serial port (pyserial), a real board behind a UART.

cocotb's transport (the generated Verilog) is :mod:`spikeforge.sim.host.cocotb_io`.
"""

from .protocol import ProtocolError

__all__ = ["AmaranthTransport", "AmaranthUartTransport", "SerialTransport"]


class AmaranthTransport:
    """Byte transport over the bridge's streams inside an Amaranth async testbench."""

    def __init__(self, ctx, rx, tx):
        self.ctx, self.rx, self.tx = ctx, rx, tx

    async def send(self, data):
        for byte in data:
            self.ctx.set(self.rx.valid, 1)
            self.ctx.set(self.rx.payload, byte)
            await self.ctx.tick().until(self.rx.ready)
        self.ctx.set(self.rx.valid, 0)

    async def recv(self, n):
        out = bytearray()
        self.ctx.set(self.tx.ready, 1)
        while len(out) < n:
            payload, = await self.ctx.tick().sample(self.tx.payload).until(self.tx.valid)
            out.append(payload)
        self.ctx.set(self.tx.ready, 0)
        return bytes(out)


class AmaranthUartTransport:
    """Byte transport over UART pins inside an Amaranth simulation (bit-level, 8N1).

    ``send`` drives the ``rx`` pin bit by bit; a background process (:meth:`monitor`, add it
    with ``sim.add_process``) decodes the ``tx`` pin into a queue that ``recv`` drains.
    """

    def __init__(self, rx_pin, tx_pin, divisor):
        self.rx_pin, self.tx_pin, self.divisor = rx_pin, tx_pin, divisor
        self.received = bytearray()
        self.ctx = None

    async def monitor(self, ctx):
        d = self.divisor

        async def level_after(cycles):
            for _ in range(cycles):
                _clk, _rst, level = await ctx.tick().sample(self.tx_pin)
            return level

        while True:
            await ctx.tick().until(self.tx_pin == 0)        # start bit
            await level_after(d // 2)
            byte = 0
            for bit in range(8):
                byte |= await level_after(d) << bit
            if await level_after(d) != 1:
                raise ProtocolError("UART frame error on the device's tx pin")
            self.received.append(byte)

    async def send(self, data):
        ctx, d = self.ctx, self.divisor
        for byte in data:
            for level in [0] + [(byte >> k) & 1 for k in range(8)] + [1]:
                ctx.set(self.rx_pin, level)
                await ctx.tick().repeat(d)

    async def recv(self, n):
        while len(self.received) < n:
            await self.ctx.tick()
        out = bytes(self.received[:n])
        del self.received[:n]
        return out


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
