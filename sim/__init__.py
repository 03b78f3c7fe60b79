"""Simulation and host side, by role.

- :mod:`spikeforge.sim.host`: the host side of the accelerator: the protocol client, the driver,
  transports (Amaranth simulator, simulated UART pins, cocotb, a serial port) and training on the
  RTL or a board.
- :mod:`spikeforge.sim.verify`: verification: harnesses of every engine, cocotb testbenches, the
  simulator runner, lint.
- :mod:`spikeforge.sim.bench`: benchmarks (``spikeforge bench``).
"""
