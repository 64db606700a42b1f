"""Numeric kernels several stages and steps share (numba, numpy)."""
