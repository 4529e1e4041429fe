"""Numba kernels: loops only, no validation, outputs preallocated by the caller.

The validating public API is :mod:`catlab.functional`; nothing here should be
called with unchecked arguments.
"""
