"""A standalone cocotb testbench for the generated accelerator: copy this folder into your own
project. It needs only the files `spikeforge verilog -o DIR` writes (sf_accelerator.v and
sf_accelerator.json), cocotb and a simulator; no spikeforge import.

It sends IDENT (the reply carries the design key of the JSON), writes the first weight words,
reads them back, and checks that a frame with a damaged CRC is answered with an error.
"""

import json
import os
import struct

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

DESC = json.load(open(os.environ["SF_DESCRIPTION"]))
P = DESC["protocol"]


def crc8(data, crc=0):
    poly = int(P["crc"]["polynomial"], 16)
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


class Link:
    """The rx/tx byte streams of sf_accelerator (valid/ready, one byte per clock)."""

    def __init__(self, dut):
        self.dut = dut
        dut.rx__valid.value = 0
        dut.tx__ready.value = 0
        dut.link_error.value = 0

    async def send(self, data):
        for byte in data:
            self.dut.rx__valid.value = 1
            self.dut.rx__payload.value = byte
            while True:
                await ReadOnly()
                ready = int(self.dut.rx__ready.value)
                await RisingEdge(self.dut.clk)
                if ready:
                    break
        self.dut.rx__valid.value = 0

    async def recv(self, n):
        out = bytearray()
        self.dut.tx__ready.value = 1
        while len(out) < n:
            await ReadOnly()
            if int(self.dut.tx__valid.value):
                out.append(int(self.dut.tx__payload.value))
            await RisingEdge(self.dut.clk)
        self.dut.tx__ready.value = 0
        return bytes(out)

    async def frame(self, body, n_data):
        """Send ``body`` and its CRC; return the reply's status and data (CRC checked)."""
        await self.send(body + bytes([crc8(body)]))
        status = (await self.recv(1))[0]
        if status != P["ack"]["DONE"]:
            crc = await self.recv(1)
            assert crc[0] == crc8([status])
            return status, b""
        rest = await self.recv(n_data + 1)
        assert rest[-1] == crc8(bytes([status]) + rest[:-1]), "reply CRC"
        return status, rest[:-1]


@cocotb.test()
async def ident_write_read_and_a_damaged_frame(dut):
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    link = Link(dut)
    cmd = P["commands"]

    status, data = await link.frame(bytes([cmd["IDENT"]]), len(P["ident_magic"]) + 2 + 8)
    assert status == P["ack"]["DONE"] and data[:4] == P["ident_magic"].encode()
    assert data[6:].hex() == DESC["design_key"]

    w = next(m for m in DESC["memories"] if m["name"] == "w")
    words = [(0x5A3C1234 + 7 * i) & ((1 << w["width"]) - 1) for i in range(4)]
    payload = b"".join(v.to_bytes(w["bytes_per_word"], "little") for v in words)
    status, _ = await link.frame(struct.pack("<BBII", cmd["WRITE"], w["id"], 0, 4) + payload, 0)
    assert status == P["ack"]["DONE"]
    status, data = await link.frame(struct.pack("<BBII", cmd["READ"], w["id"], 0, 4),
                                    4 * w["bytes_per_word"])
    n = w["bytes_per_word"]
    assert [int.from_bytes(data[i * n:(i + 1) * n], "little") for i in range(4)] == words

    # a damaged CRC: an error reply with the CRC flag, nothing written
    body = bytes([cmd["START"], DESC["protocol"]["ops"]["CLEAR"]])
    await link.send(body + bytes([crc8(body) ^ 0xFF]))
    status = (await link.recv(2))[0]
    assert status == P["ack"]["ERROR"] | P["error_flags"]["CRC"]
