"""Client of the accelerator's byte protocol (:mod:`spikeforge.hdl.protocol`).

Transport-agnostic: it needs an object with ``async send(data: bytes)`` and
``async recv(n) -> bytes`` (:mod:`spikeforge.sim.host.transports`,
:mod:`spikeforge.sim.host.cocotb_io`).
"""

import struct

import numpy as np

from spikeforge.hdl.protocol import IDENT_BYTES, IDENT_MAGIC, Ack, Cmd

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
        await self.transport.send(struct.pack("<BBII", Cmd.WRITE, index, addr, len(words)) +
                                  pack_words(words, t.nbytes))

    async def read(self, name, count, addr=0, signed=False):
        index, t = self._target(name)
        await self.transport.send(struct.pack("<BBII", Cmd.READ, index, addr, count))
        data = await self.transport.recv(count * t.nbytes)
        return unpack_words(data, t.nbytes, t.width, signed)

    async def start(self, op):
        await self.transport.send(bytes([Cmd.START, op]))

    async def wait(self, condition=0):
        """Block until the accelerator is idle (0) or until condition ``k`` holds."""
        await self.transport.send(bytes([Cmd.WAIT, condition]))
        reply = await self.transport.recv(1)
        if reply[0] != Ack.DONE:
            raise ProtocolError(f"WAIT answered {reply[0]:#x}, expected {Ack.DONE:#x}")

    async def counters(self, n):
        await self.transport.send(bytes([Cmd.COUNT]))
        return list(struct.unpack(f"<{n}I", await self.transport.recv(4 * n)))

    async def ident(self):
        """``{"memories", "counters", "key"}`` of the connected accelerator (``key``: the design
        key, hex, as :meth:`spikeforge.hdl.design.Design.key` gives it)."""
        await self.transport.send(bytes([Cmd.IDENT]))
        reply = await self.transport.recv(IDENT_BYTES)
        magic = len(IDENT_MAGIC)
        if reply[:magic] != IDENT_MAGIC:
            raise ProtocolError(f"not a spikeforge accelerator of this version: IDENT answered "
                                f"{reply!r}; rebuild the bitstream with this spikeforge")
        return {"memories": reply[magic], "counters": reply[magic + 1],
                "key": reply[magic + 2:].hex()}
