"""Verification: engine harnesses, cocotb testbenches and the simulator runner (one build root)."""
