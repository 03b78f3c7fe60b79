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

__all__ = ["Cmd", "Op", "Ack", "Wait", "JobReg", "JOB_ERR_BUFFER", "JOB_ERR_ORDER",
           "JOB_ERR_DATA", "JOB_EPOCHS_MAX", "BUFFER_BIT", "OP_MASK", "IDENT_MAGIC", "IDENT_BYTES",
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
    JOB = 6          # start the training job of the on-chip data set (registers: JobReg)
    ORDER = 7        # the sample order of bank (BUFFER_BIT) is loaded: the job may use it


#: TRAIN/INFER: input buffer 1 (else 0); MODE: pipelining on
BUFFER_BIT = 0x80
OP_MASK = 0x7F


class Wait(IntEnum):
    """Condition of a WAIT frame."""
    IDLE = 0         # nothing queued or running
    BUFFER0 = 1      # input buffer 0 may be rewritten
    BUFFER1 = 2      # input buffer 1 may be rewritten
    ORDER0 = 3       # order bank 0 may be rewritten (not loaded, or used up by the job)
    ORDER1 = 4       # order bank 1 may be rewritten
    JOB = 5          # no training job is running


class JobReg(IntEnum):
    """Words of the ``job`` memory target (32 bits each; designs with an on-chip data set)."""
    TRAIN_COUNT = 0  # training samples per epoch (the job trains TRAIN_COUNT // B batches)
    TEST_BASE = 1    # data-set index of the first test sample
    TEST_COUNT = 2   # test samples inferred after each epoch
    EPOCHS = 3       # epochs of the job (1 .. JOB_EPOCHS_MAX)
    STATUS = 4       # read only: bit 0 running, bit 1 waiting for an order, bits 16.. epochs done
    ERRORS = 5       # read only, sticky: host writes refused while the job owned the memory


#: bits of JobReg.ERRORS
JOB_ERR_BUFFER = 1   # a host write to x or labels while the job ran (dropped)
JOB_ERR_ORDER = 2    # a host write to an order bank that was loaded (dropped)
JOB_ERR_DATA = 4     # a host write to the data set while the job ran (dropped)
JOB_EPOCHS_MAX = 256


class Ack(IntEnum):
    DONE = 0xD0
    ERROR = 0xEE


IDENT_MAGIC = b"SFG2"
IDENT_BYTES = len(IDENT_MAGIC) + 2 + KEY_BYTES
