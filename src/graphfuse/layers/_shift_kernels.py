"""Triton kernels of :mod:`graphfuse.layers.shift_triton` (imported only from there, on first
use, because importing this module imports ``triton`` and fixes its interpreter mode: see
``shift_triton._build``).  The formulas and the launch code are documented in
``shift_triton``."""

import triton
import triton.language as tl

cdiv = triton.cdiv


@triton.jit
def temporal_fwd(x_ptr, k_ptr, y1_ptr, x1_ptr, out_ptr,
                 rows, C, T_out, T_in, V, stride,
                 sxn, sxc, sxt, sxv, son, soc, sot, sov,
                 BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    rm = r < rows
    cm = c < C
    w = r % V
    nh = r // V
    h = nh % T_out
    n = (nh // T_out).to(tl.int64)
    y1 = tl.load(y1_ptr + c, mask=cm, other=0).to(tl.int64)
    x1 = tl.load(x1_ptr + c, mask=cm, other=0).to(tl.int64)
    m2 = rm[:, None] & cm[None, :]
    t0 = h[:, None].to(tl.int64) * stride + y1[None, :]
    v0 = w[:, None].to(tl.int64) + x1[None, :]
    base = n[:, None] * sxn + c[None, :].to(tl.int64) * sxc
    acc = tl.full((BLOCK_R, BLOCK_C), 0.0, tl.float32)
    for ky in tl.static_range(2):
        tt = t0 + ky
        t_ok = (tt >= 0) & (tt < T_in)
        for kx in tl.static_range(2):
            vv = v0 + kx
            ok = m2 & t_ok & (vv >= 0) & (vv < V)
            wk = tl.load(k_ptr + c * 4 + (ky * 2 + kx), mask=cm, other=0.0).to(tl.float32)
            val = tl.load(x_ptr + base + tt * sxt + vv * sxv, mask=ok, other=0.0)
            acc += wk[None, :] * val.to(tl.float32)
    dst = (n[:, None] * son + c[None, :].to(tl.int64) * soc
           + h[:, None].to(tl.int64) * sot + w[:, None].to(tl.int64) * sov)
    tl.store(out_ptr + dst, acc.to(out_ptr.dtype.element_ty), mask=m2)

@triton.jit
def _grad_tap(g_ptr, gbase, t, v, y1, x1, ok, T_out, V, stride, sgt, sgv,
              ky: tl.constexpr, kx: tl.constexpr):
    # Output (h, w) that read input (t, v) through tap (ky, kx), or 0 if none did.
    hn = t - y1 - ky
    h = hn // stride
    ww = v - x1 - kx
    valid = ok & (hn >= 0) & (hn - h * stride == 0) & (h < T_out) & (ww >= 0) & (ww < V)
    return tl.load(g_ptr + gbase + h * sgt + ww * sgv, mask=valid, other=0.0).to(tl.float32)

@triton.jit
def temporal_bwd(g_ptr, x_ptr, k_ptr, y1_ptr, x1_ptr, gx_ptr, part_ptr,
                 rows, rows_per_prog, C, T_out, T_in, V, stride,
                 sgn, sgc, sgt, sgv, sxn, sxc, sxt, sxv, sdn, sdc, sdt, sdv,
                 NEED_X: tl.constexpr, NEED_K: tl.constexpr,
                 BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    pid_r = tl.program_id(0)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = c < C
    c64 = c.to(tl.int64)
    y1 = tl.load(y1_ptr + c, mask=cm, other=0).to(tl.int64)[None, :]
    x1 = tl.load(x1_ptr + c, mask=cm, other=0).to(tl.int64)[None, :]
    w00 = tl.load(k_ptr + c * 4 + 0, mask=cm, other=0.0).to(tl.float32)[None, :]
    w01 = tl.load(k_ptr + c * 4 + 1, mask=cm, other=0.0).to(tl.float32)[None, :]
    w10 = tl.load(k_ptr + c * 4 + 2, mask=cm, other=0.0).to(tl.float32)[None, :]
    w11 = tl.load(k_ptr + c * 4 + 3, mask=cm, other=0.0).to(tl.float32)[None, :]
    k00 = tl.full((BLOCK_C,), 0.0, tl.float32)
    k01 = tl.full((BLOCK_C,), 0.0, tl.float32)
    k10 = tl.full((BLOCK_C,), 0.0, tl.float32)
    k11 = tl.full((BLOCK_C,), 0.0, tl.float32)
    start = pid_r * rows_per_prog
    for off in range(0, rows_per_prog, BLOCK_R):
        r = start + off + tl.arange(0, BLOCK_R)
        rm = r < rows  # rows_per_prog is a multiple of BLOCK_R
        v = (r % V).to(tl.int64)[:, None]
        nt = r // V
        t = (nt % T_in).to(tl.int64)[:, None]
        n = (nt // T_in).to(tl.int64)[:, None]
        ok = rm[:, None] & cm[None, :]
        gbase = n * sgn + c64[None, :] * sgc
        g00 = _grad_tap(g_ptr, gbase, t, v, y1, x1, ok, T_out, V, stride, sgt, sgv, 0, 0)
        g01 = _grad_tap(g_ptr, gbase, t, v, y1, x1, ok, T_out, V, stride, sgt, sgv, 0, 1)
        g10 = _grad_tap(g_ptr, gbase, t, v, y1, x1, ok, T_out, V, stride, sgt, sgv, 1, 0)
        g11 = _grad_tap(g_ptr, gbase, t, v, y1, x1, ok, T_out, V, stride, sgt, sgv, 1, 1)
        if NEED_X:
            gx = w00 * g00 + w01 * g01 + w10 * g10 + w11 * g11
            dst = n * sdn + c64[None, :] * sdc + t * sdt + v * sdv
            tl.store(gx_ptr + dst, gx.to(gx_ptr.dtype.element_ty), mask=ok)
        if NEED_K:
            xv = tl.load(x_ptr + n * sxn + c64[None, :] * sxc + t * sxt + v * sxv,
                         mask=ok, other=0.0).to(tl.float32)
            k00 += tl.sum(g00 * xv, axis=0)
            k01 += tl.sum(g01 * xv, axis=0)
            k10 += tl.sum(g10 * xv, axis=0)
            k11 += tl.sum(g11 * xv, axis=0)
    if NEED_K:
        dst = (pid_r * C + c64) * 4
        tl.store(part_ptr + dst + 0, k00, mask=cm)
        tl.store(part_ptr + dst + 1, k01, mask=cm)
        tl.store(part_ptr + dst + 2, k10, mask=cm)
        tl.store(part_ptr + dst + 3, k11, mask=cm)

@triton.jit
def gather_fwd(x_ptr, idx_ptr, scale_ptr, out_ptr, rows, K, sx, so,
               HAS_SCALE: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    r = (tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)).to(tl.int64)
    k = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    km = k < K
    m2 = (r < rows)[:, None] & km[None, :]
    src = tl.load(idx_ptr + k, mask=km, other=0).to(tl.int64)
    val = tl.load(x_ptr + r[:, None] * sx + src[None, :], mask=m2, other=0.0)
    if HAS_SCALE:
        val = val.to(tl.float32) * tl.load(scale_ptr + k, mask=km, other=0.0).to(tl.float32)[None, :]
    tl.store(out_ptr + r[:, None] * so + k[None, :].to(tl.int64), val.to(out_ptr.dtype.element_ty), mask=m2)

@triton.jit
def gather_bwd(g_ptr, x_ptr, inv_ptr, scale_inv_ptr, gx_ptr, part_ptr,
               rows, rows_per_prog, K, sg, sx, sd,
               HAS_SCALE: tl.constexpr, NEED_X: tl.constexpr, NEED_SCALE: tl.constexpr,
               BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    pid_r = tl.program_id(0)
    j = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    jm = j < K
    src = tl.load(inv_ptr + j, mask=jm, other=0).to(tl.int64)[None, :]
    if HAS_SCALE:
        s = tl.load(scale_inv_ptr + j, mask=jm, other=0.0).to(tl.float32)[None, :]
    else:
        s = tl.full((1, BLOCK_C), 1.0, tl.float32)
    acc = tl.full((BLOCK_C,), 0.0, tl.float32)
    start = pid_r * rows_per_prog
    for off in range(0, rows_per_prog, BLOCK_R):
        r = (start + off + tl.arange(0, BLOCK_R)).to(tl.int64)
        m2 = (r < rows)[:, None] & jm[None, :]
        g = tl.load(g_ptr + r[:, None] * sg + src, mask=m2, other=0.0).to(tl.float32)
        if NEED_X:
            gx = g * s
            tl.store(gx_ptr + r[:, None] * sd + j[None, :].to(tl.int64),
                     gx.to(gx_ptr.dtype.element_ty), mask=m2)
        if NEED_SCALE:
            xv = tl.load(x_ptr + r[:, None] * sx + j[None, :].to(tl.int64), mask=m2, other=0.0)
            acc += tl.sum(g * xv.to(tl.float32), axis=0)
    if NEED_SCALE:
        tl.store(part_ptr + pid_r.to(tl.int64) * K + j, acc, mask=jm)
