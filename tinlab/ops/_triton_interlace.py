"""The Triton kernels behind :mod:`tinlab.ops.triton_kernels` (imported only when Triton is installed;
module-level because a Triton kernel calls other kernels through its globals)."""
import triton
import triton.language as tl


@triton.jit
def coefficients(z_ptr, v_ptr, n, t, r, T, G, scale, REVERSE: tl.constexpr, WEIGHTS: tl.constexpr,
                 CLAMP: tl.constexpr):
    """(src0, src1, a0, a1) of frame t, row r of video n, from OffsetNet's z (N, G) and WeightNet's v
    (N, G, T): o = scale * (sigmoid(z) - 1/2) (negated for reverse rows), w = 2 sigmoid(v)."""
    g = r % G if REVERSE else r
    o = scale * (tl.sigmoid(tl.load(z_ptr + n * G + g).to(tl.float32)) - 0.5)
    if REVERSE:
        o = tl.where(r >= G, -o, o)
    f = tl.floor(o)
    lam = o - f
    s0 = t - f.to(tl.int32)
    s1 = s0 - 1
    a0 = 1.0 - lam
    a1 = lam
    if CLAMP:
        s0 = tl.minimum(tl.maximum(s0, 0), T - 1)
        s1 = tl.minimum(tl.maximum(s1, 0), T - 1)
    else:
        a0 = tl.where((s0 >= 0) & (s0 < T), a0, 0.0)
        a1 = tl.where((s1 >= 0) & (s1 < T), a1, 0.0)
        s0 = tl.minimum(tl.maximum(s0, 0), T - 1)
        s1 = tl.minimum(tl.maximum(s1, 0), T - 1)
    if WEIGHTS:
        w = 2.0 * tl.sigmoid(tl.load(v_ptr + (n * G + g) * T + t).to(tl.float32))
        a0 = a0 * w
        a1 = a1 * w
    return s0, s1, a0, a1

@triton.jit
def load_coefficients(s0_ptr, s1_ptr, a0_ptr, a1_ptr, n, t, r, T, G):
    k = (n * T + t) * G + r
    return (tl.load(s0_ptr + k).to(tl.int32), tl.load(s1_ptr + k).to(tl.int32),
            tl.load(a0_ptr + k).to(tl.float32), tl.load(a1_ptr + k).to(tl.float32))

@triton.jit
def element_offsets(e, CG, L, scg, sl, CHANNELS_INNER: tl.constexpr):
    """Offset within a row of element e: channels fastest when they are (channels_last)."""
    if CHANNELS_INNER:
        return (e % CG) * scg + (e // CG) * sl
    return (e // L) * scg + (e % L) * sl

@triton.jit
def forward(x, y, s0_ptr, s1_ptr, a0_ptr, a1_ptr, z_ptr, v_ptr, T, R, G, GI, CG, L, scale,
            sxn, sxt, sxr, sxc, sxl, syn, syt, syr, syc, syl,
            FUSED: tl.constexpr, REVERSE: tl.constexpr, WEIGHTS: tl.constexpr, CLAMP: tl.constexpr,
            CHANNELS_INNER: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)  # (n, t, r)
    r = row % R
    t = (row // R) % T
    n = row // (R * T)
    e = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = e < CG * L
    ex = element_offsets(e, CG, L, sxc, sxl, CHANNELS_INNER)
    ey = element_offsets(e, CG, L, syc, syl, CHANNELS_INNER)
    out = y + n * syn + t * syt + r * syr + ey
    if r < GI:
        if FUSED:
            s0, s1, a0, a1 = coefficients(z_ptr, v_ptr, n, t, r, T, G, scale, REVERSE, WEIGHTS, CLAMP)
        else:
            s0, s1, a0, a1 = load_coefficients(s0_ptr, s1_ptr, a0_ptr, a1_ptr, n, t, r, T, GI)
        base = x + n * sxn + r * sxr + ex
        v0 = tl.load(base + s0 * sxt, mask=mask, other=0.0).to(tl.float32)
        v1 = tl.load(base + s1 * sxt, mask=mask, other=0.0).to(tl.float32)
        tl.store(out, (a0 * v0 + a1 * v1).to(y.dtype.element_ty), mask=mask)
    else:
        value = tl.load(x + n * sxn + t * sxt + r * sxr + ex, mask=mask, other=0.0)
        tl.store(out, value.to(y.dtype.element_ty), mask=mask)

@triton.jit
def backward_x(gy, gx, s0_ptr, s1_ptr, a0_ptr, a1_ptr, T, R, GI, CG, L,
               sgn, sgt, sgr, sgc, sgl, sxn, sxt, sxr, sxc, sxl,
               CHANNELS_INNER: tl.constexpr, T_PAD: tl.constexpr, BLOCK: tl.constexpr):
    """gx[n, s, r] = sum over t of a0[n,t,r] [src0 = s] gy[n,t,r] + a1[n,t,r] [src1 = s] gy[n,t,r]."""
    chain = tl.program_id(0)  # (n, r)
    r = chain % R
    n = chain // R
    e = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = e < CG * L
    eg = element_offsets(e, CG, L, sgc, sgl, CHANNELS_INNER)
    ex = element_offsets(e, CG, L, sxc, sxl, CHANNELS_INNER)
    frames = tl.arange(0, T_PAD)
    if r < GI:
        acc = tl.zeros((T_PAD, BLOCK), dtype=tl.float32)
        for t in range(T):
            s0, s1, a0, a1 = load_coefficients(s0_ptr, s1_ptr, a0_ptr, a1_ptr, n, t, r, T, GI)
            g = tl.load(gy + n * sgn + t * sgt + r * sgr + eg, mask=mask, other=0.0).to(tl.float32)
            w = tl.where(frames == s0, a0, 0.0) + tl.where(frames == s1, a1, 0.0)
            acc += w[:, None] * g[None, :]
        ptrs = gx + n * sxn + frames[:, None] * sxt + r * sxr + ex[None, :]
        tl.store(ptrs, acc.to(gx.dtype.element_ty), mask=(frames[:, None] < T) & mask[None, :])
    else:
        for t in range(T):
            g = tl.load(gy + n * sgn + t * sgt + r * sgr + eg, mask=mask, other=0.0)
            tl.store(gx + n * sxn + t * sxt + r * sxr + ex, g.to(gx.dtype.element_ty), mask=mask)

@triton.jit
def backward_coefficients(x, gy, s0_ptr, s1_ptr, ga0, ga1, T, GI, CG, L,
                          sxn, sxt, sxr, sxc, sxl, sgn, sgt, sgr, sgc, sgl,
                          CHANNELS_INNER: tl.constexpr, BLOCK: tl.constexpr):
    """ga0[n,t,r] = sum_e gy[n,t,r,e] x[n,src0,r,e], ga1 likewise with src1 (fp32 accumulation)."""
    k = tl.program_id(0)  # (n, t, r) with r < GI
    r = k % GI
    t = (k // GI) % T
    n = k // (GI * T)
    s0 = tl.load(s0_ptr + k).to(tl.int32)
    s1 = tl.load(s1_ptr + k).to(tl.int32)
    acc0 = tl.zeros((BLOCK,), dtype=tl.float32)
    acc1 = tl.zeros((BLOCK,), dtype=tl.float32)
    for start in range(0, CG * L, BLOCK):
        e = start + tl.arange(0, BLOCK)
        mask = e < CG * L
        ex = element_offsets(e, CG, L, sxc, sxl, CHANNELS_INNER)
        g = tl.load(gy + n * sgn + t * sgt + r * sgr + element_offsets(e, CG, L, sgc, sgl, CHANNELS_INNER),
                    mask=mask, other=0.0).to(tl.float32)
        base = x + n * sxn + r * sxr + ex
        acc0 += g * tl.load(base + s0 * sxt, mask=mask, other=0.0).to(tl.float32)
        acc1 += g * tl.load(base + s1 * sxt, mask=mask, other=0.0).to(tl.float32)
    tl.store(ga0 + k, tl.sum(acc0, axis=0))
    tl.store(ga1 + k, tl.sum(acc1, axis=0))


@triton.jit
def shift(x, y, T, C, L, FOLD, DIRECTION, sxn, sxt, sxc, sxl, syn, syt, syc, syl,
          CHANNELS_INNER: tl.constexpr, BLOCK: tl.constexpr):
    """TSM's shift of a clip (N, T, C, L): channels [0, FOLD) read frame t + DIRECTION, [FOLD, 2 FOLD)
    frame t - DIRECTION (zero where that frame does not exist), the rest frame t. One pass, any layout."""
    frame = tl.program_id(0)  # (n, t)
    t = frame % T
    n = frame // T
    e = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = e < C * L
    if CHANNELS_INNER:
        c = e % C
        l = e // C
    else:
        c = e // L
        l = e % L
    src = tl.where(c < FOLD, t + DIRECTION, tl.where(c < 2 * FOLD, t - DIRECTION, t))
    valid = mask & (src >= 0) & (src < T)
    value = tl.load(x + n * sxn + src * sxt + c * sxc + l * sxl, mask=valid, other=0.0)
    tl.store(y + n * syn + t * syt + c * syc + l * syl, value, mask=mask)
