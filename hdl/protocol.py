"""The host protocol's codes: one definition shared by the gateware and the host driver.

The bridge (:mod:`spikeforge.hdl.host`) decodes :class:`Cmd`, the top (:mod:`spikeforge.hdl.top`)
executes :class:`Op` and answers :class:`Wait` conditions, and the driver
(:mod:`spikeforge.sim.host`) packs the same codes. Pure Python (no Amaranth import).

Frames (all integers little-endian)::

    WRITE  mem:u8 addr:u32 count:u32 data[count]    words of ceil(width/8) bytes; no reply
    READ   mem:u8 addr:u32 count:u32                 reply: data[count]
    START  op:u8                                     start operation ``op``; no reply
    WAIT   cond:u8                                   reply Ack.DONE once condition ``cond`` holds
    COUNT                                            reply: every counter as u32
    IDENT                                            reply: IDENT_MAGIC, n_mems:u8, n_counters:u8,
                                                     the design key (KEY_BYTES bytes)
    other                                            reply Ack.ERROR, then idle
"""

from enum import IntEnum

from .design import KEY_BYTES

__all__ = ["Cmd", "Op", "Ack", "Wait", "BUFFER_BIT", "OP_MASK", "IDENT_MAGIC", "IDENT_BYTES",
           "KEY_BYTES"]


class Cmd(IntEnum):
    """First byte of a host frame."""
    WRITE = 0x01
    READ = 0x02
    START = 0x03
    WAIT = 0x04
    COUNT = 0x05
    IDENT = 0x06


class Op(IntEnum):
    """Operation of a START frame (low 7 bits; see :data:`BUFFER_BIT`)."""
    TRAIN = 1        # one training step on an input buffer
    INFER = 2        # one inference step on an input buffer
    SYNC = 3         # accepted, does nothing (the BE reads the one weight memory; no copy)
    CLEAR = 4        # clear the counters
    MODE = 5         # BUFFER_BIT set: pipelining on, clear: off


#: TRAIN/INFER: input buffer 1 (else 0); MODE: pipelining on
BUFFER_BIT = 0x80
OP_MASK = 0x7F


class Wait(IntEnum):
    """Condition of a WAIT frame."""
    IDLE = 0         # nothing queued or running
    BUFFER0 = 1      # input buffer 0 may be rewritten
    BUFFER1 = 2      # input buffer 1 may be rewritten


class Ack(IntEnum):
    DONE = 0xD0
    ERROR = 0xEE


IDENT_MAGIC = b"SFG2"
IDENT_BYTES = len(IDENT_MAGIC) + 2 + KEY_BYTES
