"""Host driver of the accelerator's byte protocol (see :mod:`spikeforge.hdl.host`).

The driver is transport-agnostic: it needs an object with ``async send(data: bytes)`` and
``async recv(n) -> bytes``. Transports exist for the Amaranth simulator, for cocotb (the generated
Verilog under Verilator or Icarus) and for a serial port (a real board behind a UART).
"""

import struct

import numpy as np

from spikeforge.hdl.host import (ACK_DONE, IDENT_MAGIC, OP_COUNT, OP_IDENT, OP_READ, OP_START,
                                 OP_WAIT, OP_WRITE)

__all__ = ["Host", "ProtocolError", "as_int_list", "pack_words", "unpack_words"]


class ProtocolError(RuntimeError):
    pass


def as_int_list(words):
    """Python ints of ``words`` (a numpy array or any iterable of ints), exactly.

    Never through ``np.asarray`` of Python ints: a list mixing values above and below 2**63
    becomes float64 there and loses its low bits.
    """
    if isinstance(words, np.ndarray):
        return [int(w) for w in words.ravel()]
    return [int(w) for w in words]


def pack_words(words, nbytes):
    """Little-endian bytes of integer ``words`` (two's complement for negatives)."""
    mask = (1 << (8 * nbytes)) - 1
    return b"".join((w & mask).to_bytes(nbytes, "little") for w in as_int_list(words))


def unpack_words(data, nbytes, width, signed=False):
    """Integers from little-endian bytes, masked to ``width`` bits (sign-extended if ``signed``)."""
    n = len(data) // nbytes
    raw = np.frombuffer(data, dtype=np.uint8).reshape(n, nbytes).astype(object)
    values = [sum(int(b) << (8 * k) for k, b in enumerate(row)) & ((1 << width) - 1)
              for row in raw]
    if signed:
        values = [v - (1 << width) if v >> (width - 1) else v for v in values]
    # words wider than 63 bits stay Python ints
    return np.array(values, dtype=np.int64 if width <= 63 else object)


class Host:
    """High-level operations over a byte transport.

    Parameters
    ----------
    transport : object with async ``send(bytes)`` and ``recv(n)``
    targets : list of :class:`spikeforge.hdl.host.MemTarget`, in the bridge's order
    """

    def __init__(self, transport, targets):
        self.transport = transport
        self.targets = {t.name: (index, t) for index, t in enumerate(targets)}

    def _target(self, name):
        try:
            return self.targets[name]
        except KeyError:
            raise ProtocolError(f"unknown memory {name!r}; have {sorted(self.targets)}") from None

    async def write(self, name, words, addr=0):
        index, t = self._target(name)
        words = as_int_list(words)
        if addr + len(words) > t.depth:
            raise ProtocolError(f"write of {len(words)} words at {addr} overflows {name} "
                                f"(depth {t.depth})")
        await self.transport.send(struct.pack("<BBII", OP_WRITE, index, addr, len(words)) +
                                  pack_words(words, t.nbytes))

    async def read(self, name, count, addr=0, signed=False):
        index, t = self._target(name)
        await self.transport.send(struct.pack("<BBII", OP_READ, index, addr, count))
        data = await self.transport.recv(count * t.nbytes)
        return unpack_words(data, t.nbytes, t.width, signed)

    async def start(self, op):
        await self.transport.send(bytes([OP_START, op]))

    async def wait(self, condition=0):
        """Block until the accelerator is idle (0) or until condition ``k`` holds."""
        await self.transport.send(bytes([OP_WAIT, condition]))
        reply = await self.transport.recv(1)
        if reply[0] != ACK_DONE:
            raise ProtocolError(f"WAIT answered {reply[0]:#x}, expected {ACK_DONE:#x}")

    async def counters(self, n):
        await self.transport.send(bytes([OP_COUNT]))
        return list(struct.unpack(f"<{n}I", await self.transport.recv(4 * n)))

    async def ident(self):
        await self.transport.send(bytes([OP_IDENT]))
        reply = await self.transport.recv(6)
        if reply[:4] != IDENT_MAGIC:
            raise ProtocolError(f"not a spikeforge accelerator: IDENT answered {reply!r}")
        return {"memories": reply[4], "counters": reply[5]}


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
