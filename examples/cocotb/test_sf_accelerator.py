"""A standalone cocotb testbench for the generated accelerator: copy this folder into your own
project. It needs only the files `spikeforge verilog -o DIR` writes (sf_accelerator.v and
sf_accelerator.json), cocotb and a simulator; no spikeforge import.

It sends IDENT (the reply carries the design key of the JSON), writes the first weight words,
reads them back, and checks that a frame with a damaged CRC is answered with an error. With
``SF_AXIS=1`` it drives ``sf_accelerator_axis.v`` (``spikeforge verilog --axis``) instead.
"""

import json
import os
import struct

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

DESC = json.load(open(os.environ["SF_DESCRIPTION"]))
P = DESC["protocol"]
AXIS = os.environ.get("SF_AXIS") == "1"       # the sf_accelerator_axis wrapper's port names
NAMES = ({"clk": "aclk", "rx_payload": "s_axis_tdata", "rx_valid": "s_axis_tvalid",
          "rx_ready": "s_axis_tready", "tx_payload": "m_axis_tdata", "tx_valid": "m_axis_tvalid",
          "tx_ready": "m_axis_tready"} if AXIS else
         {"clk": "clk", "rx_payload": "rx__payload", "rx_valid": "rx__valid",
          "rx_ready": "rx__ready", "tx_payload": "tx__payload", "tx_valid": "tx__valid",
          "tx_ready": "tx__ready"})


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
        self.p = {key: getattr(dut, name) for key, name in NAMES.items()}
        self.p["rx_valid"].value = 0
        self.p["tx_ready"].value = 0
        if not AXIS:
            dut.link_error.value = 0

    async def send(self, data):
        p = self.p
        for byte in data:
            p["rx_valid"].value = 1
            p["rx_payload"].value = byte
            while True:
                await ReadOnly()
                ready = int(p["rx_ready"].value)
                await RisingEdge(p["clk"])
                if ready:
                    break
        p["rx_valid"].value = 0

    async def recv(self, n):
        p = self.p
        out = bytearray()
        p["tx_ready"].value = 1
        while len(out) < n:
            await ReadOnly()
            if int(p["tx_valid"].value):
                out.append(int(p["tx_payload"].value))
            await RisingEdge(p["clk"])
        p["tx_ready"].value = 0
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
    clk = getattr(dut, NAMES["clk"])
    Clock(clk, 10, unit="ns").start()
    reset = dut.aresetn if AXIS else dut.rst
    reset.value = 0 if AXIS else 1                       # aresetn is active low
    for _ in range(3):
        await RisingEdge(clk)
    reset.value = 1 if AXIS else 0
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
