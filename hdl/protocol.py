"""The host protocol's codes: one definition shared by the gateware and the host driver.

The bridge (:mod:`spikeforge.hdl.host`) decodes :class:`Cmd`, the top (:mod:`spikeforge.hdl.top`)
executes :class:`Op` and answers :class:`Wait` conditions, and the driver
(:mod:`spikeforge.sim.host`) packs the same codes. Pure Python (no Amaranth import).

Frames (all integers little-endian); every frame ends with ``crc``, the CRC-8 (:func:`crc8`:
polynomial 0x07, initial value 0) of all its bytes before it::

    WRITE  mem:u8 addr:u32 count:u32 data[count] crc   words of ceil(width/8) bytes
    READ   mem:u8 addr:u32 count:u32 crc               reply data: data[count]
    START  op:u8 crc                                   start operation ``op``
    WAIT   cond:u8 crc                                 reply once condition ``cond`` holds
    COUNT  crc                                         reply data: every counter as u32
    IDENT  crc                                         reply data: IDENT_MAGIC, n_mems:u8,
                                                       n_counters:u8, the design key

Every frame gets exactly one reply, ``status:u8 [data] crc`` (the CRC over status and data):
``status`` is :data:`Ack.DONE` with the data, or ``Ack.ERROR | flags`` (:class:`Err`) without.
The host sends a frame only after the reply to the previous one (a credit of one frame), so the
bridge is always reading when a byte arrives; bytes that arrive while it replies or waits are
consumed and reported (``Err.FRAME``). After an error the bridge discards bytes until the line
has been quiet for a while, then replies, so host and bridge agree on where the next frame
starts. A frame that stops arriving mid-way times out (``Err.FRAME``). WRITE data are stored as
they arrive (a corrupt frame is answered with ``Err.CRC`` after its words were written: writes
are idempotent and the host repeats them); START, WAIT and READ act only once their CRC checked.
"""

from enum import IntEnum

from .design import KEY_BYTES

__all__ = ["Cmd", "Op", "Ack", "Err", "crc8", "Wait", "JobReg", "JOB_EPOCHS_MAX", "ORDER_CHUNK",
           "BUFFER_BIT", "OP_MASK", "IDENT_MAGIC", "IDENT_BYTES", "KEY_BYTES"]


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
    ORDER_PART = 8   # ORDER_CHUNK more entries of bank (BUFFER_BIT) are loaded (a streamed order)


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


JOB_EPOCHS_MAX = 256

#: entries of an order bank each ORDER_PART makes usable: the job trains the first batches of an
#: epoch while the host still sends the rest of its order
ORDER_CHUNK = 64


class Ack(IntEnum):
    DONE = 0xD0
    ERROR = 0xE0     # with the Err flags in the low 4 bits


class Err(IntEnum):
    """Flags of an error reply (``Ack.ERROR | flags``)."""
    CRC = 1          # the frame's CRC did not match: nothing was started; repeat the frame
    LINK = 2         # the UART lost a byte (overrun) or saw a frame error since the last reply
    REFUSED = 4      # the access conflicts with a running engine or the training job
    FRAME = 8        # unknown command or memory, a frame cut short (timeout), or bytes sent
                     # while the bridge replied or waited


def crc8(data, crc=0):
    """CRC-8, polynomial x^8 + x^2 + x + 1 (0x07), MSB first, no final XOR."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


IDENT_MAGIC = b"SFG3"
IDENT_BYTES = len(IDENT_MAGIC) + 2 + KEY_BYTES
