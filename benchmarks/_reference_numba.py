"""numba kernels for the reference workloads B and S8: the near-limit CPU baselines.

Two families, both ``@njit(parallel=True, fastmath=True, cache=True, error_model="numpy")``:

* **per-member** (``KERNELS``, implementation ``numba``): ``prange`` over members as the outer
  loop, the 520 time steps inner, the stocks in scalar locals. One member's steps form a serial
  dependency chain, so each core works on one member at a time, in scalar instructions.
* **blocked SIMD** (``BLOCK_KERNELS``, implementation ``numba_simd``): ``prange`` over blocks of
  ``BLOCK`` members; in a block the time loop is outer and a member loop inner, which LLVM
  vectorises. Same arithmetic per member, different loop order.

Arithmetic stays in the dtype of the inputs: every constant (dt, 3, r0, ...) arrives in the array
``c`` of that dtype and is unpacked into locals, and per-member values come from arrays of that
dtype, so a float32 run has no float64 promotion (a Python float literal would promote): the
LLVM IR of every float32 kernel, parfor bodies included, has no double-precision fadd, fsub,
fmul or fdiv and no fpext (checked with ``inspect_llvm`` on numba 0.65.1). Grid times come from
``grid`` (dtype), not from the integer step index.

Per-member trajectory kernels write ``out[i, n]`` (member i, step n). ``out`` is either a
C-ordered ``(members, steps + 1)`` array (member-major; returned as its transposed view) or the
F-ordered transpose of a C-ordered ``(steps + 1, members)`` array (time-major), so the same source
compiles to both layouts. Blocked kernels write a C-ordered ``(steps + 1, members)`` array (a
block writes a contiguous run of each row, which the vectorised loop needs).

Summary kernels keep no trajectory: per member they carry the previous A and return the first
time A reaches 0.5 (linear between grid times, ``nan`` if never) and A at the final time.
``fastmath`` assumes no NaNs in arithmetic, so "reached yet" is a boolean, never a NaN test.

Layout of ``c`` (all in the run's dtype): see ``C_NAMES``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

C_NAMES = ("dt", "half_dt", "sixth_dt", "zero", "one", "two", "three", "level", "nan",
           "r0", "one_minus_r0", "K", "inv_tau_r", "U0", "A0")
(_DT, _HDT, _SDT, _ZERO, _ONE, _TWO, _THREE, _LEVEL, _NAN,
 _R0, _OMR0, _K, _ITR, _U0, _A0) = range(len(C_NAMES))

# error_model="numpy": a division by zero gives inf/nan as in numpy and jax, instead of a
# ZeroDivisionError check and branch on every division (that check alone cost ~20% of the scalar
# S8 RK4 kernel and stops LLVM from vectorising any loop with a division).
# inline="always" on the helpers: numba inlines them into each kernel before LLVM sees it. Left
# to LLVM's cross-module inlining, whether the blocked S8 RK4 loop got vectorised depended on
# what was in numba's cache (measured 2.5e7 or 2.5e8 member-steps per CPU-second for the same
# source); inlined, it vectorises every time. The scalar kernels lose ~5% (RK4) or nothing.
_JIT = {"fastmath": True, "error_model": "numpy", "inline": "always"}
_PAR = {"parallel": True, "fastmath": True, "cache": True, "error_model": "numpy"}


# -- vector fields and steps (scalar locals; LLVM inlines these small functions) ----------------
@njit(**_JIT)
def _b_rhs(f, p, q, one):
    """Bass: F' = (p + q F)(1 - F), per year."""
    return (p + q * f) * (one - f)


@njit(**_JIT)
def _b_euler(f, p, q, one, dt, hdt, sdt, two):
    return f + dt * _b_rhs(f, p, q, one)


@njit(**_JIT)
def _b_rk4(f, p, q, one, dt, hdt, sdt, two):
    k1 = _b_rhs(f, p, q, one)
    k2 = _b_rhs(f + hdt * k1, p, q, one)
    k3 = _b_rhs(f + hdt * k2, p, q, one)
    k4 = _b_rhs(f + dt * k3, p, q, one)
    return f + sdt * (k1 + two * k2 + two * k3 + k4)


@njit(**_JIT)
def _s8_rhs(u, w, i1, i2, i3, a, d, r, p, q, rd, k3, delta, r0, omr0, kk, itr):
    """S8 derivatives (per year); ``k3 = 3 / tau``, ``itr = 1 / tau_r``."""
    aware = u * (p + q * a) * r
    decide = w * rd * r
    o1 = k3 * i1
    o2 = k3 * i2
    o3 = k3 * i3
    disc = delta * a
    r_tgt = r0 + omr0 * a / (a + kk)
    return (-aware, aware - decide, decide - o1, o1 - o2, o2 - o3, o3 - disc, disc,
            (r_tgt - r) * itr)


@njit(**_JIT)
def _s8_euler(y, p, q, rd, k3, delta, r0, omr0, kk, itr, dt, hdt, sdt, two):
    u, w, i1, i2, i3, a, d, r = y
    f = _s8_rhs(u, w, i1, i2, i3, a, d, r, p, q, rd, k3, delta, r0, omr0, kk, itr)
    return (u + dt * f[0], w + dt * f[1], i1 + dt * f[2], i2 + dt * f[3], i3 + dt * f[4],
            a + dt * f[5], d + dt * f[6], r + dt * f[7])


@njit(**_JIT)
def _s8_rk4(y, p, q, rd, k3, delta, r0, omr0, kk, itr, dt, hdt, sdt, two):
    u, w, i1, i2, i3, a, d, r = y
    k1 = _s8_rhs(u, w, i1, i2, i3, a, d, r, p, q, rd, k3, delta, r0, omr0, kk, itr)
    k2 = _s8_rhs(u + hdt * k1[0], w + hdt * k1[1], i1 + hdt * k1[2], i2 + hdt * k1[3],
                 i3 + hdt * k1[4], a + hdt * k1[5], d + hdt * k1[6], r + hdt * k1[7],
                 p, q, rd, k3, delta, r0, omr0, kk, itr)
    k3_ = _s8_rhs(u + hdt * k2[0], w + hdt * k2[1], i1 + hdt * k2[2], i2 + hdt * k2[3],
                  i3 + hdt * k2[4], a + hdt * k2[5], d + hdt * k2[6], r + hdt * k2[7],
                  p, q, rd, k3, delta, r0, omr0, kk, itr)
    k4 = _s8_rhs(u + dt * k3_[0], w + dt * k3_[1], i1 + dt * k3_[2], i2 + dt * k3_[3],
                 i3 + dt * k3_[4], a + dt * k3_[5], d + dt * k3_[6], r + dt * k3_[7],
                 p, q, rd, k3, delta, r0, omr0, kk, itr)
    return (u + sdt * (k1[0] + two * k2[0] + two * k3_[0] + k4[0]),
            w + sdt * (k1[1] + two * k2[1] + two * k3_[1] + k4[1]),
            i1 + sdt * (k1[2] + two * k2[2] + two * k3_[2] + k4[2]),
            i2 + sdt * (k1[3] + two * k2[3] + two * k3_[3] + k4[3]),
            i3 + sdt * (k1[4] + two * k2[4] + two * k3_[4] + k4[4]),
            a + sdt * (k1[5] + two * k2[5] + two * k3_[5] + k4[5]),
            d + sdt * (k1[6] + two * k2[6] + two * k3_[6] + k4[6]),
            r + sdt * (k1[7] + two * k2[7] + two * k3_[7] + k4[7]))


# -- kernels: B ---------------------------------------------------------------------------------
# One kernel per (workload, method, output): numba cannot cache a kernel that takes the step
# function as an argument, and a runtime method switch would sit in the inner loop.
@njit(**_PAR)
def b_euler_path(p, q, c, out):
    dt, hdt, sdt, two = c[_DT], c[_HDT], c[_SDT], c[_TWO]
    one = c[_ONE]
    for i in prange(p.shape[0]):
        pi, qi = p[i], q[i]
        f = c[_A0]
        out[i, 0] = f
        for n in range(out.shape[1] - 1):
            f = _b_euler(f, pi, qi, one, dt, hdt, sdt, two)
            out[i, n + 1] = f


@njit(**_PAR)
def b_rk4_path(p, q, c, out):
    dt, hdt, sdt, two = c[_DT], c[_HDT], c[_SDT], c[_TWO]
    one = c[_ONE]
    for i in prange(p.shape[0]):
        pi, qi = p[i], q[i]
        f = c[_A0]
        out[i, 0] = f
        for n in range(out.shape[1] - 1):
            f = _b_rk4(f, pi, qi, one, dt, hdt, sdt, two)
            out[i, n + 1] = f


@njit(**_PAR)
def b_euler_summary(p, q, c, grid, t_half, a_end):
    dt, hdt, sdt, two, level = c[_DT], c[_HDT], c[_SDT], c[_TWO], c[_LEVEL]
    one = c[_ONE]
    for i in prange(p.shape[0]):
        pi, qi = p[i], q[i]
        f = c[_A0]
        reached = f >= level
        th = grid[0] if reached else c[_NAN]
        for n in range(grid.shape[0] - 1):
            g = _b_euler(f, pi, qi, one, dt, hdt, sdt, two)
            if not reached and g >= level:
                th = grid[n] + (level - f) * dt / (g - f)
                reached = True
            f = g
        t_half[i] = th
        a_end[i] = f


@njit(**_PAR)
def b_rk4_summary(p, q, c, grid, t_half, a_end):
    dt, hdt, sdt, two, level = c[_DT], c[_HDT], c[_SDT], c[_TWO], c[_LEVEL]
    one = c[_ONE]
    for i in prange(p.shape[0]):
        pi, qi = p[i], q[i]
        f = c[_A0]
        reached = f >= level
        th = grid[0] if reached else c[_NAN]
        for n in range(grid.shape[0] - 1):
            g = _b_rk4(f, pi, qi, one, dt, hdt, sdt, two)
            if not reached and g >= level:
                th = grid[n] + (level - f) * dt / (g - f)
                reached = True
            f = g
        t_half[i] = th
        a_end[i] = f


# -- kernels: S8 --------------------------------------------------------------------------------
@njit(**_PAR)
def s8_euler_path(p, q, rd, tau, delta, c, out):
    dt, hdt, sdt, two, three = c[_DT], c[_HDT], c[_SDT], c[_TWO], c[_THREE]
    r0, omr0, kk, itr = c[_R0], c[_OMR0], c[_K], c[_ITR]
    zero = c[_ZERO]
    for i in prange(p.shape[0]):
        pi, qi, rdi, k3, de = p[i], q[i], rd[i], three / tau[i], delta[i]
        y = (c[_U0], zero, zero, zero, zero, c[_A0], zero, r0)
        out[i, 0] = y[5]
        for n in range(out.shape[1] - 1):
            y = _s8_euler(y, pi, qi, rdi, k3, de, r0, omr0, kk, itr, dt, hdt, sdt, two)
            out[i, n + 1] = y[5]


@njit(**_PAR)
def s8_rk4_path(p, q, rd, tau, delta, c, out):
    dt, hdt, sdt, two, three = c[_DT], c[_HDT], c[_SDT], c[_TWO], c[_THREE]
    r0, omr0, kk, itr = c[_R0], c[_OMR0], c[_K], c[_ITR]
    zero = c[_ZERO]
    for i in prange(p.shape[0]):
        pi, qi, rdi, k3, de = p[i], q[i], rd[i], three / tau[i], delta[i]
        y = (c[_U0], zero, zero, zero, zero, c[_A0], zero, r0)
        out[i, 0] = y[5]
        for n in range(out.shape[1] - 1):
            y = _s8_rk4(y, pi, qi, rdi, k3, de, r0, omr0, kk, itr, dt, hdt, sdt, two)
            out[i, n + 1] = y[5]


@njit(**_PAR)
def s8_euler_summary(p, q, rd, tau, delta, c, grid, t_half, a_end):
    dt, hdt, sdt, two, three, level = c[_DT], c[_HDT], c[_SDT], c[_TWO], c[_THREE], c[_LEVEL]
    r0, omr0, kk, itr = c[_R0], c[_OMR0], c[_K], c[_ITR]
    zero = c[_ZERO]
    for i in prange(p.shape[0]):
        pi, qi, rdi, k3, de = p[i], q[i], rd[i], three / tau[i], delta[i]
        y = (c[_U0], zero, zero, zero, zero, c[_A0], zero, r0)
        reached = y[5] >= level
        th = grid[0] if reached else c[_NAN]
        for n in range(grid.shape[0] - 1):
            a = y[5]
            y = _s8_euler(y, pi, qi, rdi, k3, de, r0, omr0, kk, itr, dt, hdt, sdt, two)
            if not reached and y[5] >= level:
                th = grid[n] + (level - a) * dt / (y[5] - a)
                reached = True
        t_half[i] = th
        a_end[i] = y[5]


@njit(**_PAR)
def s8_rk4_summary(p, q, rd, tau, delta, c, grid, t_half, a_end):
    dt, hdt, sdt, two, three, level = c[_DT], c[_HDT], c[_SDT], c[_TWO], c[_THREE], c[_LEVEL]
    r0, omr0, kk, itr = c[_R0], c[_OMR0], c[_K], c[_ITR]
    zero = c[_ZERO]
    for i in prange(p.shape[0]):
        pi, qi, rdi, k3, de = p[i], q[i], rd[i], three / tau[i], delta[i]
        y = (c[_U0], zero, zero, zero, zero, c[_A0], zero, r0)
        reached = y[5] >= level
        th = grid[0] if reached else c[_NAN]
        for n in range(grid.shape[0] - 1):
            a = y[5]
            y = _s8_rk4(y, pi, qi, rdi, k3, de, r0, omr0, kk, itr, dt, hdt, sdt, two)
            if not reached and y[5] >= level:
                th = grid[n] + (level - a) * dt / (y[5] - a)
                reached = True
        t_half[i] = th
        a_end[i] = y[5]


# -- SIMD kernels: blocks of members ------------------------------------------------------------
# prange over blocks of BLOCK members; per block the time loop is outer and the members inner, so
# LLVM vectorises the member loop (8 float32 lanes with AVX2). The block state is one 2-D array
# ``st[row, member]`` (stocks, then per-member parameters): with one array LLVM needs no runtime
# alias checks; with a view per stock it gave up and stayed scalar. The method is a runtime flag
# tested once per step per block, outside the member loop.
BLOCK = 64  # members per block: st is 13 x 64 x 4 B = 3.3 KiB (float32), well inside L1


@njit(**_JIT)
def _b_block_step(st, nn, rk4, one, dt, hdt, sdt, two):
    if rk4:
        for j in range(nn):
            st[0, j] = _b_rk4(st[0, j], st[1, j], st[2, j], one, dt, hdt, sdt, two)
    else:
        for j in range(nn):
            st[0, j] = _b_euler(st[0, j], st[1, j], st[2, j], one, dt, hdt, sdt, two)


@njit(**_JIT)
def _b_block_init(p, q, c, lo, nn):
    st = np.empty((3, BLOCK), dtype=p.dtype)  # F, p, q
    for j in range(nn):
        st[0, j] = c[_A0]
        st[1, j] = p[lo + j]
        st[2, j] = q[lo + j]
    return st


@njit(**_JIT)
def _s8_block_step(st, nn, rk4, r0, omr0, kk, itr, dt, hdt, sdt, two):
    if rk4:
        for j in range(nn):
            z = _s8_rk4((st[0, j], st[1, j], st[2, j], st[3, j], st[4, j], st[5, j], st[6, j], st[7, j]),
                        st[8, j], st[9, j], st[10, j], st[11, j], st[12, j],
                        r0, omr0, kk, itr, dt, hdt, sdt, two)
            st[0, j], st[1, j], st[2, j], st[3, j] = z[0], z[1], z[2], z[3]
            st[4, j], st[5, j], st[6, j], st[7, j] = z[4], z[5], z[6], z[7]
    else:
        for j in range(nn):
            z = _s8_euler((st[0, j], st[1, j], st[2, j], st[3, j], st[4, j], st[5, j], st[6, j], st[7, j]),
                          st[8, j], st[9, j], st[10, j], st[11, j], st[12, j],
                          r0, omr0, kk, itr, dt, hdt, sdt, two)
            st[0, j], st[1, j], st[2, j], st[3, j] = z[0], z[1], z[2], z[3]
            st[4, j], st[5, j], st[6, j], st[7, j] = z[4], z[5], z[6], z[7]


@njit(**_JIT)
def _s8_block_init(p, q, rd, tau, delta, c, lo, nn):
    st = np.empty((13, BLOCK), dtype=p.dtype)  # U W I1 I2 I3 A D R, p q rd 3/tau delta
    zero = c[_ZERO]
    for j in range(nn):
        st[0, j], st[1, j], st[2, j], st[3, j] = c[_U0], zero, zero, zero
        st[4, j], st[5, j], st[6, j], st[7, j] = zero, c[_A0], zero, c[_R0]
        st[8, j], st[9, j], st[10, j] = p[lo + j], q[lo + j], rd[lo + j]
        st[11, j], st[12, j] = c[_THREE] / tau[lo + j], delta[lo + j]
    return st


@njit(**_JIT)
def _block_cross(st, row, nn, n, prev, reached, th, grid, level, dt):
    """After step n: record first crossings of ``level`` by row ``row``; update ``prev``."""
    for j in range(nn):
        a = st[row, j]
        if not reached[j] and a >= level:
            th[j] = grid[n] + (level - prev[j]) * dt / (a - prev[j])
            reached[j] = True
        prev[j] = a


@njit(**_PAR)
def b_block_path(p, q, c, rk4, out):
    """out: C-ordered (steps + 1, members)."""
    dt, hdt, sdt, two, one = c[_DT], c[_HDT], c[_SDT], c[_TWO], c[_ONE]
    m = p.shape[0]
    for b in prange((m + BLOCK - 1) // BLOCK):
        lo = b * BLOCK
        nn = min(lo + BLOCK, m) - lo
        st = _b_block_init(p, q, c, lo, nn)
        for j in range(nn):
            out[0, lo + j] = st[0, j]
        for n in range(out.shape[0] - 1):
            _b_block_step(st, nn, rk4, one, dt, hdt, sdt, two)
            for j in range(nn):
                out[n + 1, lo + j] = st[0, j]


@njit(**_PAR)
def s8_block_path(p, q, rd, tau, delta, c, rk4, out):
    """out: C-ordered (steps + 1, members)."""
    dt, hdt, sdt, two = c[_DT], c[_HDT], c[_SDT], c[_TWO]
    r0, omr0, kk, itr = c[_R0], c[_OMR0], c[_K], c[_ITR]
    m = p.shape[0]
    for b in prange((m + BLOCK - 1) // BLOCK):
        lo = b * BLOCK
        nn = min(lo + BLOCK, m) - lo
        st = _s8_block_init(p, q, rd, tau, delta, c, lo, nn)
        for j in range(nn):
            out[0, lo + j] = st[5, j]
        for n in range(out.shape[0] - 1):
            _s8_block_step(st, nn, rk4, r0, omr0, kk, itr, dt, hdt, sdt, two)
            for j in range(nn):
                out[n + 1, lo + j] = st[5, j]


@njit(**_PAR)
def b_block_summary(p, q, c, rk4, grid, t_half, a_end):
    dt, hdt, sdt, two, one, level = c[_DT], c[_HDT], c[_SDT], c[_TWO], c[_ONE], c[_LEVEL]
    m = p.shape[0]
    for b in prange((m + BLOCK - 1) // BLOCK):
        lo = b * BLOCK
        nn = min(lo + BLOCK, m) - lo
        st = _b_block_init(p, q, c, lo, nn)
        prev, th = st[0].copy(), np.full(BLOCK, c[_NAN])
        reached = prev >= level
        for j in range(nn):
            if reached[j]:
                th[j] = grid[0]
        for n in range(grid.shape[0] - 1):
            _b_block_step(st, nn, rk4, one, dt, hdt, sdt, two)
            _block_cross(st, 0, nn, n, prev, reached, th, grid, level, dt)
        for j in range(nn):
            t_half[lo + j] = th[j]
            a_end[lo + j] = st[0, j]


@njit(**_PAR)
def s8_block_summary(p, q, rd, tau, delta, c, rk4, grid, t_half, a_end):
    dt, hdt, sdt, two, level = c[_DT], c[_HDT], c[_SDT], c[_TWO], c[_LEVEL]
    r0, omr0, kk, itr = c[_R0], c[_OMR0], c[_K], c[_ITR]
    m = p.shape[0]
    for b in prange((m + BLOCK - 1) // BLOCK):
        lo = b * BLOCK
        nn = min(lo + BLOCK, m) - lo
        st = _s8_block_init(p, q, rd, tau, delta, c, lo, nn)
        prev, th = st[5].copy(), np.full(BLOCK, c[_NAN])
        reached = prev >= level
        for j in range(nn):
            if reached[j]:
                th[j] = grid[0]
        for n in range(grid.shape[0] - 1):
            _s8_block_step(st, nn, rk4, r0, omr0, kk, itr, dt, hdt, sdt, two)
            _block_cross(st, 5, nn, n, prev, reached, th, grid, level, dt)
        for j in range(nn):
            t_half[lo + j] = th[j]
            a_end[lo + j] = st[5, j]


BLOCK_KERNELS = {
    ("B", "path"): b_block_path, ("B", "summary"): b_block_summary,
    ("S8", "path"): s8_block_path, ("S8", "summary"): s8_block_summary,
}

KERNELS = {
    ("B", "euler", "path"): b_euler_path, ("B", "rk4", "path"): b_rk4_path,
    ("B", "euler", "summary"): b_euler_summary, ("B", "rk4", "summary"): b_rk4_summary,
    ("S8", "euler", "path"): s8_euler_path, ("S8", "rk4", "path"): s8_rk4_path,
    ("S8", "euler", "summary"): s8_euler_summary, ("S8", "rk4", "summary"): s8_rk4_summary,
}


def constants(dtype: np.dtype, *, dt: float, level: float, r0: float, K: float, tau_r: float,
              U0: float, A0: float) -> np.ndarray:
    """The array ``c`` of ``C_NAMES`` values in ``dtype`` (dt in years, rates per year)."""
    values = {"dt": dt, "half_dt": dt / 2, "sixth_dt": dt / 6, "zero": 0.0, "one": 1.0,
              "two": 2.0, "three": 3.0,
              "level": level, "nan": np.nan, "r0": r0, "one_minus_r0": 1.0 - r0, "K": K,
              "inv_tau_r": 1.0 / tau_r, "U0": U0, "A0": A0}
    return np.array([values[name] for name in C_NAMES], dtype=dtype)
