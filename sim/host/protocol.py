"""Client of the accelerator's byte protocol (:mod:`spikeforge.hdl.protocol`).

Transport-agnostic: it needs an object with ``async send(data: bytes)`` and
``async recv(n) -> bytes`` (:mod:`spikeforge.sim.host.transports`,
:mod:`spikeforge.sim.host.cocotb_io`).
"""

import struct

import numpy as np

from spikeforge.hdl.protocol import IDENT_BYTES, IDENT_MAGIC, Ack, Cmd, Err, crc8

__all__ = ["Host", "ProtocolError", "LinkError", "Refused", "as_int_list", "pack_words",
           "unpack_words"]


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


class LinkError(ProtocolError):
    """A frame or a reply was damaged on the link (CRC, lost bytes): the host may repeat it.
    ``answered``: the accelerator itself reported the error (so it did not act on the frame)."""

    def __init__(self, message, answered=False):
        super().__init__(message)
        self.answered = answered


class Refused(ProtocolError):
    """The accelerator refused an access that conflicts with a running engine or job."""


#: largest data part of one WRITE frame (a damaged frame is repeated whole)
WRITE_CHUNK_BYTES = 4096
RETRIES = 3


class Host:
    """High-level operations over a byte transport (:mod:`spikeforge.hdl.protocol` frames:
    a CRC on every frame and reply, one reply per frame).

    Parameters
    ----------
    transport : object with async ``send(bytes)`` and ``recv(n)``
    targets : list of :class:`spikeforge.hdl.memmap.HostTarget`, in the bridge's order

    Damaged frames and replies (:class:`LinkError`) are repeated up to ``RETRIES`` times (every
    frame is idempotent except START, which is repeated only when the accelerator answered with
    an error, i.e. did not start it; a damaged reply to a START raises); a refusal raises
    :class:`Refused` at once.
    """

    def __init__(self, transport, targets):
        self.transport = transport
        self.targets = {t.name: (index, t) for index, t in enumerate(targets)}
        self.retries = 0            # frames repeated after a link error (a figure for benches)

    def _target(self, name):
        try:
            return self.targets[name]
        except KeyError:
            raise ProtocolError(f"unknown memory {name!r}; have {sorted(self.targets)}") from None

    async def _exchange(self, frame, n_data, what, repeat=True):
        """Send ``frame`` (its CRC appended), return the reply's ``n_data`` data bytes."""
        frame = bytes(frame)
        frame += bytes([crc8(frame)])
        for attempt in range(RETRIES + 1):
            await self.transport.send(frame)
            try:
                return await self._reply(n_data, what)
            except LinkError as exc:
                if (not repeat and not exc.answered) or attempt == RETRIES:
                    raise LinkError(f"{exc} (after {attempt + 1} attempts)") from None
                self.retries += 1
        raise AssertionError("unreachable")

    async def _reply(self, n_data, what):
        status = (await self.transport.recv(1))[0]
        if status == Ack.DONE:
            rest = await self.transport.recv(n_data + 1)
            if crc8(bytes([status]) + rest[:-1]) != rest[-1]:
                raise LinkError(f"{what}: the reply's CRC does not match (damaged on the link)")
            return rest[:-1]
        if status & 0xF0 != Ack.ERROR:
            raise LinkError(f"{what}: the reply starts with {status:#04x}, neither DONE nor ERROR")
        crc = (await self.transport.recv(1))[0]
        if crc8(bytes([status])) != crc:
            raise LinkError(f"{what}: an error reply with a damaged CRC")
        flags = status & 0x0F
        if flags & Err.REFUSED:
            raise Refused(f"{what} refused: it conflicts with a running engine or the training "
                          f"job (weights only while idle, an input buffer only when WAIT for "
                          f"it returned, the data set and job registers only while no job "
                          f"runs, an order bank only when it is free); wait, then repeat")
        names = [e.name for e in Err if flags & e]
        raise LinkError(f"{what}: the accelerator reported {'+'.join(names)} "
                        f"({'CRC mismatch' if flags & Err.CRC else 'lost or unexpected bytes'})",
                        answered=True)

    async def write(self, name, words, addr=0):
        index, t = self._target(name)
        words = as_int_list(words)
        if addr + len(words) > t.depth:
            raise ProtocolError(f"write of {len(words)} words at {addr} overflows {name} "
                                f"(depth {t.depth})")
        per_frame = max(1, WRITE_CHUNK_BYTES // t.nbytes)
        for i in range(0, len(words), per_frame):
            chunk = words[i:i + per_frame]
            await self._exchange(struct.pack("<BBII", Cmd.WRITE, index, addr + i, len(chunk)) +
                                 pack_words(chunk, t.nbytes), 0, f"WRITE {name}[{addr + i}]")

    async def read(self, name, count, addr=0, signed=False):
        index, t = self._target(name)
        if addr + count > t.depth:
            raise ProtocolError(f"read of {count} words at {addr} overflows {name} "
                                f"(depth {t.depth})")
        data = await self._exchange(struct.pack("<BBII", Cmd.READ, index, addr, count),
                                    count * t.nbytes, f"READ {name}[{addr}]")
        return unpack_words(data, t.nbytes, t.width, signed)

    async def start(self, op):
        await self._exchange(bytes([Cmd.START, op]), 0, f"START {op:#04x}", repeat=False)

    async def wait(self, condition=0):
        """Block until the accelerator is idle (0) or until condition ``k`` holds."""
        await self._exchange(bytes([Cmd.WAIT, condition]), 0, f"WAIT {condition}")

    async def counters(self, n):
        return list(struct.unpack(f"<{n}I", await self._exchange(bytes([Cmd.COUNT]), 4 * n,
                                                                 "COUNT")))

    async def ident(self):
        """``{"memories", "counters", "key"}`` of the connected accelerator (``key``: the design
        key, hex, as :meth:`spikeforge.hdl.design.Design.key` gives it)."""
        await self.transport.send(bytes([Cmd.IDENT, crc8(bytes([Cmd.IDENT]))]))
        first = await self.transport.recv(1)
        if first[0] != Ack.DONE:
            raise ProtocolError(f"not a spikeforge accelerator of this version: IDENT answered "
                                f"{first!r}; rebuild the bitstream with this spikeforge")
        reply = await self.transport.recv(IDENT_BYTES + 1)
        magic = len(IDENT_MAGIC)
        if reply[:magic] != IDENT_MAGIC or crc8(first + reply[:-1]) != reply[-1]:
            raise ProtocolError(f"not a spikeforge accelerator of this version: IDENT answered "
                                f"{first + reply!r}; rebuild the bitstream with this spikeforge")
        return {"memories": reply[magic], "counters": reply[magic + 1],
                "key": reply[magic + 2:-1].hex()}
