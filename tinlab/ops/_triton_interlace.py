"""The Triton kernels behind :mod:`tinlab.ops.triton_kernels` (imported only when Triton is installed;
module-level because a Triton kernel calls other kernels through its globals)."""
import triton
import triton.language as tl


@triton.jit
def row_and_elements(per_row, BLOCK: tl.constexpr):
    """(row, element offsets) of this program on a 1-D grid of rows x blocks, in int64: the grid's first
    axis holds 2^31 - 1 programs (the second only 65,535) and no product of an index and a stride wraps."""
    pid = tl.program_id(0).to(tl.int64)
    blocks = tl.cdiv(per_row, BLOCK)
    return pid // blocks, (pid % blocks) * BLOCK + tl.arange(0, BLOCK)

@triton.jit
def chain_elements(R, CG, L, sgc, sgl, sxc, sxl, LAYOUT: tl.constexpr, BLOCK: tl.constexpr):
    """A backward program's chain (video n, row r) and its block of elements: the mask and the element
    offsets in the gradient (strides sgc, sgl) and in x (sxc, sxl)."""
    chain, e = row_and_elements(CG * L, BLOCK)
    mask = e < CG * L
    return (chain // R, chain % R, mask, element_offsets(e, CG, L, sgc, sgl, LAYOUT),
            element_offsets(e, CG, L, sxc, sxl, LAYOUT))

@triton.jit
def tin_offset(z_ptr, n, r, G, scale, REVERSE: tl.constexpr):
    """TIN's offset of row r of video n from OffsetNet's z (N, G), in fp32: its floor f (int32), the
    fraction lam = o - f and do/dz. Forward and backward both call this, so they always agree on f."""
    g = r % G if REVERSE else r
    sz = tl.sigmoid(tl.load(z_ptr + n * G + g).to(tl.float32))
    o = scale * (sz - 0.5)
    dodz = scale * sz * (1.0 - sz)
    if REVERSE:
        o = tl.where(r >= G, -o, o)
        dodz = tl.where(r >= G, -dodz, dodz)
    f = tl.floor(o)
    return f.to(tl.int32), o - f, dodz

@triton.jit
def tin_weight(v_ptr, n, t, r, T, G, REVERSE: tl.constexpr, WEIGHTS: tl.constexpr):
    """The frame weight w = 2 sigmoid(v) of row r, frame t (1 without attention) and dw/dv, in fp32."""
    if WEIGHTS:
        g = r % G if REVERSE else r
        sv = tl.sigmoid(tl.load(v_ptr + (n * G + g) * T + t).to(tl.float32))
        return 2.0 * sv, 2.0 * sv * (1.0 - sv)
    return 1.0, 0.0

@triton.jit
def taps(f, t, T, CLAMP: tl.constexpr):
    """Source frames (clamped into the clip) and boundary masks (1: the tap reads a real frame, or clamp)."""
    s0 = t - f
    s1 = s0 - 1
    if CLAMP:
        m0 = 1.0
        m1 = 1.0
    else:
        m0 = tl.where((s0 >= 0) & (s0 < T), 1.0, 0.0)
        m1 = tl.where((s1 >= 0) & (s1 < T), 1.0, 0.0)
    return tl.minimum(tl.maximum(s0, 0), T - 1), tl.minimum(tl.maximum(s1, 0), T - 1), m0, m1

@triton.jit
def coefficients(z_ptr, v_ptr, n, t, r, T, G, scale, REVERSE: tl.constexpr, WEIGHTS: tl.constexpr,
                 CLAMP: tl.constexpr):
    """(src0, src1, a0, a1) of frame t, row r of video n, from OffsetNet's z (N, G) and WeightNet's v
    (N, G, T): o = scale * (sigmoid(z) - 1/2) (negated for reverse rows), w = 2 sigmoid(v)."""
    f, lam, _ = tin_offset(z_ptr, n, r, G, scale, REVERSE)
    s0, s1, m0, m1 = taps(f, t, T, CLAMP)
    w, _ = tin_weight(v_ptr, n, t, r, T, G, REVERSE, WEIGHTS)
    return s0, s1, (1.0 - lam) * m0 * w, lam * m1 * w

@triton.jit
def load_coefficients(s0_ptr, s1_ptr, a0_ptr, a1_ptr, n, t, r, T, G):
    k = (n * T + t) * G + r
    return (tl.load(s0_ptr + k).to(tl.int32), tl.load(s1_ptr + k).to(tl.int32),
            tl.load(a0_ptr + k).to(tl.float32), tl.load(a1_ptr + k).to(tl.float32))

@triton.jit
def element_offsets(e, CG, L, scg, sl, LAYOUT: tl.constexpr):
    """Offset within a row of element e. LAYOUT 0: the row's Cg x L elements are dense (offset e, so the
    compiler sees contiguous, aligned blocks and issues 16-byte vector accesses); 1: channels outer, any
    strides; 2: channels innermost (channels_last), any strides."""
    if LAYOUT == 0:
        return e
    if LAYOUT == 2:
        return (e % CG) * scg + (e // CG) * sl
    return (e // L) * scg + (e % L) * sl

@triton.jit
def forward(x, y, s0_ptr, s1_ptr, a0_ptr, a1_ptr, z_ptr, v_ptr, T, R, G, GI, CG, L, scale,
            sxn, sxt, sxr, sxc, sxl, syn, syt, syr, syc, syl,
            FUSED: tl.constexpr, REVERSE: tl.constexpr, WEIGHTS: tl.constexpr, CLAMP: tl.constexpr,
            LAYOUT: tl.constexpr, BLOCK: tl.constexpr):
    row, e = row_and_elements(CG * L, BLOCK)  # row (n, t, r)
    r = row % R
    t = (row // R) % T
    n = row // (R * T)
    mask = e < CG * L
    ex = element_offsets(e, CG, L, sxc, sxl, LAYOUT)
    ey = element_offsets(e, CG, L, syc, syl, LAYOUT)
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
               LAYOUT: tl.constexpr, T_PAD: tl.constexpr, BLOCK: tl.constexpr):
    """gx[n, s, r] = sum over t of a0[n,t,r] [src0 = s] gy[n,t,r] + a1[n,t,r] [src1 = s] gy[n,t,r]."""
    n, r, mask, eg, ex = chain_elements(R, CG, L, sgc, sgl, sxc, sxl, LAYOUT, BLOCK)
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
                          LAYOUT: tl.constexpr, BLOCK: tl.constexpr):
    """ga0[n,t,r] = sum_e gy[n,t,r,e] x[n,src0,r,e], ga1 likewise with src1 (fp32 accumulation)."""
    k = tl.program_id(0).to(tl.int64)  # (n, t, r) with r < GI
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
        ex = element_offsets(e, CG, L, sxc, sxl, LAYOUT)
        g = tl.load(gy + n * sgn + t * sgt + r * sgr + element_offsets(e, CG, L, sgc, sgl, LAYOUT),
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
    frame, e = row_and_elements(C * L, BLOCK)  # frame (n, t)
    t = frame % T
    n = frame // T
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


@triton.jit
def tin_backward_x(gy, gx, z_ptr, v_ptr, small, T, R, G, GI, CG, L, scale,
                   sgn, sgt, sgr, sgc, sgl, sxn, sxt, sxr, sxc, sxl,
                   REVERSE: tl.constexpr, WEIGHTS: tl.constexpr, CLAMP: tl.constexpr, ADD_SMALL: tl.constexpr,
                   LAYOUT: tl.constexpr, BLOCK: tl.constexpr):
    """The data gradient of TIN's interlacing as a gather, O(T) per element: the offset of a (video, row) is
    one number, so frame s receives tap 0 of output frame s + f and tap 1 of s + f + 1 (with clamping,
    the end frames also receive the taps clamped onto them). Coefficients recomputed in fp32 from z, v.
    ADD_SMALL: also add small[n, s, r, c] (N, T, R, Cg), the gradient the descriptor's mean sends to every
    element of its channel, so that no separate pass adds it (tinlab::tin_block)."""
    chain, e = row_and_elements(CG * L, BLOCK)
    n = chain // R
    r = chain % R
    mask = e < CG * L
    eg = element_offsets(e, CG, L, sgc, sgl, LAYOUT)
    ex = element_offsets(e, CG, L, sxc, sxl, LAYOUT)
    g_base = gy + n * sgn + r * sgr + eg
    x_base = gx + n * sxn + r * sxr + ex
    if r < GI:
        f, lam, _ = tin_offset(z_ptr, n, r, G, scale, REVERSE)
        for s in range(T):
            acc = tl.zeros((BLOCK,), dtype=tl.float32)
            for tap in tl.static_range(2):  # tap 0 reads t - f, tap 1 reads t - f - 1
                shift = f + tap
                lo = s + shift
                hi = s + shift
                if CLAMP:
                    lo = tl.where(s == 0, 0, lo)
                    hi = tl.where(s == T - 1, T - 1, hi)
                lo = tl.maximum(lo, 0)
                hi = tl.minimum(hi, T - 1)
                part = (1.0 - lam) if tap == 0 else lam
                for t in range(lo, hi + 1):
                    w, _ = tin_weight(v_ptr, n, t, r, T, G, REVERSE, WEIGHTS)
                    g = tl.load(g_base + t * sgt, mask=mask, other=0.0).to(tl.float32)
                    acc += (part * w) * g
            if ADD_SMALL:  # small[n, s, r, channel of each element]
                channel = e % CG if LAYOUT == 2 else e // L
                acc += tl.load(small + ((n * T + s) * R + r) * CG + channel, mask=mask, other=0.0).to(tl.float32)
            tl.store(x_base + s * sxt, acc.to(gx.dtype.element_ty), mask=mask)
    else:
        for t in range(T):
            g = tl.load(g_base + t * sgt, mask=mask, other=0.0)
            tl.store(x_base + t * sxt, g.to(gx.dtype.element_ty), mask=mask)

@triton.jit
def tin_backward_coefficients(x, gy, z_ptr, v_ptr, gz_part, gv_part, T, G, GI, CG, L, CHUNK, SPLIT, scale,
                              sxn, sxt, sxr, sxc, sxl, sgn, sgt, sgr, sgc, sgl,
                              REVERSE: tl.constexpr, WEIGHTS: tl.constexpr, CLAMP: tl.constexpr,
                              LAYOUT: tl.constexpr, BLOCK: tl.constexpr):
    """Per (n, t, r < GI) and per CHUNK of its Cg * L elements (SPLIT chunks, so that a long row is reduced
    by SPLIT programs): the two taps' inner products ga0 = <gy, x[src0]>, ga1 = <gy, x[src1]> (fp32),
    chained straight into what this row and frame add to dL/dz (through lam) and dL/dv (through w):
    gz_part = (ga1 m1 - ga0 m0) w do/dz, gv_part = (ga0 (1 - lam) m0 + ga1 lam m1) dw/dv (both linear in
    ga0, ga1, so the caller's sums over frames also add the chunks)."""
    pid = tl.program_id(0).to(tl.int64)
    k = pid // SPLIT
    r = k % GI
    t = (k // GI) % T
    n = k // (GI * T)
    f, lam, dodz = tin_offset(z_ptr, n, r, G, scale, REVERSE)
    s0, s1, m0, m1 = taps(f, t, T, CLAMP)
    w, dwdv = tin_weight(v_ptr, n, t, r, T, G, REVERSE, WEIGHTS)
    first = (pid % SPLIT) * CHUNK
    end = tl.minimum(first + CHUNK, CG * L)
    acc0 = tl.zeros((BLOCK,), dtype=tl.float32)
    acc1 = tl.zeros((BLOCK,), dtype=tl.float32)
    for start in range(first, end, BLOCK):
        e = start + tl.arange(0, BLOCK)
        mask = e < end
        g = tl.load(gy + n * sgn + t * sgt + r * sgr + element_offsets(e, CG, L, sgc, sgl, LAYOUT),
                    mask=mask, other=0.0).to(tl.float32)
        base = x + n * sxn + r * sxr + element_offsets(e, CG, L, sxc, sxl, LAYOUT)
        acc0 += g * tl.load(base + s0 * sxt, mask=mask, other=0.0).to(tl.float32)
        acc1 += g * tl.load(base + s1 * sxt, mask=mask, other=0.0).to(tl.float32)
    ga0 = tl.sum(acc0, axis=0)
    ga1 = tl.sum(acc1, axis=0)
    tl.store(gz_part + pid, (ga1 * m1 - ga0 * m0) * w * dodz)
    tl.store(gv_part + pid, (ga0 * (1.0 - lam) * m0 + ga1 * lam * m1) * dwdv)

# --- TIN's descriptor, OffsetNet and WeightNet: tinlab::tin_nets (tinlab/ops/tin.py) ----------------------
#
# d (N, F, T) fp32 is the spatial mean of the F = GI * Cg interlaced channels; OffsetNet is
# c = conv_o(d) (F -> 1, k = 3, zero padding), h = fc1(c), z = fc2(relu(h)); WeightNet is v = conv_w(d)
# (F -> G, k = 3). Parameters are read as given (conv_o (1, F, 3), fc1 (T, T), fc2 (G, T), conv_w (G, F, 3)).

@triton.jit
def tin_descriptor(x, d, T, F, CG, L, inv_l, sxn, sxt, sxr, sxc, sxl, CB: tl.constexpr, LB: tl.constexpr):
    """d[n, f, t] = mean over the L elements of channel f (row f // Cg, channel f % Cg) of frame t of video
    n, in fp32: one program per (n, t, block of CB channels), tiles of CB x LB elements in any layout."""
    pid = tl.program_id(0).to(tl.int64)
    blocks = tl.cdiv(F, CB)
    frame = pid // blocks  # (n, t)
    t = frame % T
    n = frame // T
    f = (pid % blocks) * CB + tl.arange(0, CB)
    fmask = f < F
    base = x + n * sxn + t * sxt + (f // CG) * sxr + (f % CG) * sxc
    acc = tl.zeros((CB,), dtype=tl.float32)
    for start in range(0, L, LB):
        e = start + tl.arange(0, LB)
        tile = tl.load(base[:, None] + e[None, :] * sxl, mask=fmask[:, None] & (e < L)[None, :], other=0.0)
        acc += tl.sum(tile.to(tl.float32), axis=1)
    tl.store(d + (n * F + f) * T + t, acc * inv_l, mask=fmask)

@triton.jit
def shifted_descriptor(d, n, F, T, fs, fmask, ts, K: tl.constexpr):
    """d[n, f, t + K - 1] for a block of channels fs and every t (zero outside the clip): a k = 3 conv's
    tap K with zero padding, as an (FB, T_PAD) tile."""
    src = ts + (K - 1)
    ok = fmask[:, None] & ((src >= 0) & (src < T))[None, :]
    return tl.load(d + (n * F + fs)[:, None] * T + src[None, :], mask=ok, other=0.0)

@triton.jit
def offset_net_hidden(d, wo, bo, w1, b1, n, F, T, FB: tl.constexpr, T_PAD: tl.constexpr):
    """OffsetNet up to its ReLU for video n: c = conv_o(d[n]) (T), h = fc1(c) (T); zero beyond T."""
    ts = tl.arange(0, T_PAD)
    tmask = ts < T
    c = tl.zeros((T_PAD,), dtype=tl.float32)
    for start in range(0, F, FB):
        fs = start + tl.arange(0, FB)
        fmask = fs < F
        for k in tl.static_range(3):
            wk = tl.load(wo + fs * 3 + k, mask=fmask, other=0.0).to(tl.float32)
            c += tl.sum(wk[:, None] * shifted_descriptor(d, n, F, T, fs, fmask, ts, k), axis=0)
    c = tl.where(tmask, c + tl.load(bo).to(tl.float32), 0.0)
    w1_tile = tl.load(w1 + ts[:, None] * T + ts[None, :], mask=tmask[:, None] & tmask[None, :],
                      other=0.0).to(tl.float32)
    h = tl.sum(w1_tile * c[None, :], axis=1) + tl.load(b1 + ts, mask=tmask, other=0.0).to(tl.float32)
    return c, tl.where(tmask, h, 0.0), w1_tile

@triton.jit
def tin_nets_forward(d, wo, bo, w1, b1, w2, b2, ww, bw, z, v, F, T, G,
                     WEIGHTS: tl.constexpr, FB: tl.constexpr, T_PAD: tl.constexpr, G_PAD: tl.constexpr):
    """OffsetNet's z[n] (G) and WeightNet's v[n] (G, T) from the descriptor, one program per video n
    (fp32 arithmetic; the nets are a few thousand multiply-adds per video)."""
    n = tl.program_id(0).to(tl.int64)
    ts = tl.arange(0, T_PAD)
    gs = tl.arange(0, G_PAD)
    tmask = ts < T
    gmask = gs < G
    _, h, _ = offset_net_hidden(d, wo, bo, w1, b1, n, F, T, FB, T_PAD)
    a = tl.maximum(h, 0.0)
    w2_tile = tl.load(w2 + gs[:, None] * T + ts[None, :], mask=gmask[:, None] & tmask[None, :],
                      other=0.0).to(tl.float32)
    zn = tl.sum(w2_tile * a[None, :], axis=1) + tl.load(b2 + gs, mask=gmask, other=0.0).to(tl.float32)
    tl.store(z + n * G + gs, zn.to(z.dtype.element_ty), mask=gmask)
    if WEIGHTS:
        acc = tl.zeros((G_PAD, T_PAD), dtype=tl.float32)
        for start in range(0, F, FB):
            fs = start + tl.arange(0, FB)
            fmask = fs < F
            for k in tl.static_range(3):
                wk = tl.load(ww + (gs[:, None] * F + fs[None, :]) * 3 + k, mask=gmask[:, None] & fmask[None, :],
                             other=0.0).to(tl.float32)  # (G_PAD, FB)
                dk = shifted_descriptor(d, n, F, T, fs, fmask, ts, k)  # (FB, T_PAD)
                acc += tl.sum(wk[:, :, None] * dk[None, :, :], axis=1)
        acc += tl.load(bw + gs, mask=gmask, other=0.0).to(tl.float32)[:, None]
        tl.store(v + (n * G + gs[:, None]) * T + ts[None, :], acc.to(v.dtype.element_ty),
                 mask=gmask[:, None] & tmask[None, :])

@triton.jit
def shift_frames(values, ts, K: tl.constexpr):
    """values[s + 1 - K] at every s (zero outside the clip) of a (T_PAD,) vector: what a k = 3 conv's input
    frame s receives through tap K (the adjoint of shifted_descriptor)."""
    pick = ts[None, :] == (ts[:, None] + 1 - K)  # (s, t)
    return tl.sum(tl.where(pick, values[None, :], 0.0), axis=1)

@triton.jit
def shift_frames_2d(values, ts, K: tl.constexpr):
    """shift_frames of every row of a (G_PAD, T_PAD) tile."""
    pick = ts[None, :] == (ts[:, None] + 1 - K)
    return tl.sum(tl.where(pick[None, :, :], values[:, None, :], 0.0), axis=2)

@triton.jit
def tin_nets_backward(d, wo, bo, w1, b1, w2, ww, gz, gv, part, small, F, T, RC, G, inv_l,
                      O_BO, O_W1, O_B1, O_W2, O_B2, O_WW, O_BW, P,
                      WEIGHTS: tl.constexpr, FB: tl.constexpr, T_PAD: tl.constexpr, G_PAD: tl.constexpr):
    """One program per video n: OffsetNet's and WeightNet's backward from dL/dz (G) and dL/dv (G, T).
    Writes this video's parameter gradients into part[n] (P values: conv_o weight at 0, then the offsets
    O_*; summed over videos by the caller) and dL/d(rows) of the mean, d's gradient / L, into small
    (N, T, R * Cg): channels f < F from the nets, the rows beyond the fold zero."""
    n = tl.program_id(0).to(tl.int64)
    ts = tl.arange(0, T_PAD)
    gs = tl.arange(0, G_PAD)
    tmask = ts < T
    gmask = gs < G
    out = part + n * P
    c, h, w1_tile = offset_net_hidden(d, wo, bo, w1, b1, n, F, T, FB, T_PAD)
    a = tl.maximum(h, 0.0)
    gzn = tl.load(gz + n * G + gs, mask=gmask, other=0.0).to(tl.float32)
    w2_tile = tl.load(w2 + gs[:, None] * T + ts[None, :], mask=gmask[:, None] & tmask[None, :],
                      other=0.0).to(tl.float32)
    # fc2 (z = W2 a + b2), the ReLU, fc1 (h = W1 c + b1)
    tl.store(out + O_W2 + gs[:, None] * T + ts[None, :], gzn[:, None] * a[None, :],
             mask=gmask[:, None] & tmask[None, :])
    tl.store(out + O_B2 + gs, gzn, mask=gmask)
    gh = tl.where(h > 0.0, tl.sum(w2_tile * gzn[:, None], axis=0), 0.0)
    tl.store(out + O_W1 + ts[:, None] * T + ts[None, :], gh[:, None] * c[None, :], mask=tmask[:, None] & tmask[None, :])
    tl.store(out + O_B1 + ts, gh, mask=tmask)
    gc = tl.sum(w1_tile * gh[:, None], axis=0)
    tl.store(out + O_BO, tl.sum(gc, axis=0))
    gvn = tl.zeros((G_PAD, T_PAD), dtype=tl.float32)
    if WEIGHTS:
        gvn = tl.load(gv + (n * G + gs[:, None]) * T + ts[None, :], mask=gmask[:, None] & tmask[None, :],
                      other=0.0).to(tl.float32)
        tl.store(out + O_BW + gs, tl.sum(gvn, axis=1), mask=gmask)
    # the convolutions: weight gradients, and the descriptor's gradient scattered back to the rows' mean
    for start in range(0, F, FB):
        fs = start + tl.arange(0, FB)
        fmask = fs < F
        gd = tl.zeros((FB, T_PAD), dtype=tl.float32)
        for k in tl.static_range(3):
            dk = shifted_descriptor(d, n, F, T, fs, fmask, ts, k)  # (FB, T_PAD)
            tl.store(out + fs * 3 + k, tl.sum(gc[None, :] * dk, axis=1), mask=fmask)
            wk = tl.load(wo + fs * 3 + k, mask=fmask, other=0.0).to(tl.float32)
            gd += wk[:, None] * shift_frames(gc, ts, k)[None, :]
            if WEIGHTS:
                tl.store(out + O_WW + (gs[:, None] * F + fs[None, :]) * 3 + k,
                         tl.sum(gvn[:, None, :] * dk[None, :, :], axis=2), mask=gmask[:, None] & fmask[None, :])
                wwk = tl.load(ww + (gs[:, None] * F + fs[None, :]) * 3 + k, mask=gmask[:, None] & fmask[None, :],
                              other=0.0).to(tl.float32)  # (G_PAD, FB)
                gd += tl.sum(wwk[:, :, None] * shift_frames_2d(gvn, ts, k)[:, None, :], axis=0)
        tl.store(small + (n * T + ts[None, :]) * RC + fs[:, None], (gd * inv_l).to(small.dtype.element_ty),
                 mask=fmask[:, None] & tmask[None, :])
    for start in range(F, RC, FB):  # rows beyond the fold: no gradient through the mean
        fs = start + tl.arange(0, FB)
        tl.store(small + (n * T + ts[None, :]) * RC + fs[:, None], tl.zeros((FB, T_PAD), dtype=tl.float32).to(
            small.dtype.element_ty), mask=(fs < RC)[:, None] & tmask[None, :])
