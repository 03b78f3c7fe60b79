"""Simulation of the generated Verilog (cocotb with Verilator or Icarus) and host drivers."""
