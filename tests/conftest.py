"""Test settings: float64 available (truth checks need it) and rank promotion raises.

Each test picks its dtype explicitly through ``CompiledModel.params(..., dtype=...)``, so the
float32 default path is tested too.
"""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
