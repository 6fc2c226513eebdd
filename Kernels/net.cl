// net.cl — a whole multi-layer perceptron in one launch (fused forward and predict) for ScratchNet.
//
// Purpose: for a block of rows of x (N,K0): h = x; for each layer l: h = act_l(h · W_l + b_l); then, if
//   `softmax`, the row softmax of the last h; then either the rows are stored to y (N,M_L) (mode 0, forward)
//   or only the argmax of each row is stored to pred (N) (mode 1, predict; Numerics.argmax's rule: the first
//   largest value, the first NaN wins, 0 for an empty row).
// Numerics (Sources/ScratchNet/Core/Backend.swift, bitwise equal to sn_affine per layer then
//   sn_softmax_rows then sn_argmax_rows): every output of every layer starts at +0 and accumulates
//   fma(h[i][k], W[k][j], acc) for k = 0..K-1 in increasing order; then acc + b[j]; then sn_activate's
//   operations (sn_activate8 of sn_math.cl, its float8 form); the softmax is sn_softmax_rows'
//   sequential code with sn_exp (sn_exp8 for groups of 8 columns: the same bits lane by lane).
//   Intermediate rows stay in private memory (exact floats).
// Input: x row-major (N,K0) floats, or (from_bytes = 1) xbytes row-major (N,K0) bytes, each input then being
//   (float)byte / divisor, correctly rounded: sn_bytes_to_float fused into the first layer (the host's
//   write(bytes:) defers the conversion so that the floats never go through memory).
// Memory layout: W_l packed into panels of SN_TN columns by sn_pack_panels (gemm.cl):
//   panel q holds W[k][q*SN_TN + 0..SN_TN-1] for k = 0..K-1 contiguously, columns past M_l are +0; b_l
//   packed the same way with K = 1 (i.e. padded with +0 to a multiple of SN_TN); y row-major (N,M_L).
//   A last panel with at most 8 real columns is computed 8 wide only (50 -> 56 columns instead of 64);
//   the padding columns of `out` it leaves unwritten are never read.
// Arguments:  sn_net(int N, int L, int K0, int M1, int M2, int M3, int M4,
//                    global const float *x, global const uchar *xbytes, float divisor, int from_bytes,
//                    global const float *w1, b1, w2, b2, w3, b3, w4, b4 (packed; unused layers: any buffer),
//                    int act1, int act2, int act3, int act4, int softmax, int mode,
//                    global float *y, global int *pred)       act: SN_ACT_* of sn_math.cl; 1 <= L <= 4
// Work sizes: 1-D, one work-item per block of SN_NET_ROWS rows (ceil(N/SN_NET_ROWS) rounded up to the
//   host's fixed local size; work-items past the end return). Rows past N in the last block re-read row N-1
//   and are not stored. No local memory, no barriers.
// Tunables (-D; defaults let the file build alone): SN_TN (multiple of 8, the panel width, = gemm.cl's),
//   SN_NET_ROWS (rows per work-item: a register tile on CPUs, 1 on GPUs), SN_NET_MAXW (largest layer width,
//   a multiple of SN_TN; the host falls back to layer-by-layer above it), SN_NET_KC (k chunk of the first
//   layer's staged input; 392: MNIST's 784 in two chunks, measured faster than 256 and as fast as 784).
// Host-side limits: 1 <= L <= 4, every M_l <= SN_NET_MAXW, N*K0 and N*M_L < 2^31.

#pragma OPENCL FP_CONTRACT OFF

#ifndef SN_TN
#define SN_TN 16
#endif
#ifndef SN_NET_ROWS
#define SN_NET_ROWS 6
#endif
#ifndef SN_NET_MAXW
#define SN_NET_MAXW 256
#endif
#ifndef SN_NET_KC
#define SN_NET_KC 392
#endif
#if (SN_TN % 8) != 0 || SN_TN < 8
#error "SN_TN must be a positive multiple of 8"
#endif
#if (SN_NET_MAXW % SN_TN) != 0
#error "SN_NET_MAXW must be a multiple of SN_TN"
#endif
#define SN_NET_TNV (SN_TN / 8)


// The epilogue of one panel: out[r][j0 .. j0+8*NV) = act(acc[r] + bias[j0 ..]) (lane-wise sum: exact per
// output, then sn_activate's operations). NV float8 per row: SN_NET_TNV, or 1 for a narrow last panel.
#define SN_NET_EPILOGUE(NV)                                                                     \
    {                                                                                           \
        _Pragma("unroll")                                                                       \
        for (int v = 0; v < (NV); ++v) {                                                        \
            const float8 bb = vload8(v, bp + q * SN_TN);                                        \
            _Pragma("unroll")                                                                   \
            for (int r = 0; r < SN_NET_ROWS; ++r)                                               \
                vstore8(sn_activate8(acc[r][v] + bb, act), v, out + r * SN_NET_MAXW + q * SN_TN); \
        }                                                                                       \
    }

// One panel of the first layer, NV float8 wide (SN_NET_TNV; 1 for a last panel with at most 8 real columns:
// its other columns are +0 padding that nothing reads): the accumulators start at +0 (first chunk) or from
// `out`, take the chunk's k in increasing order, then get the epilogue (last chunk) or wait in `out`.
#define SN_NET_FIRST_PANEL(NV)                                                                  \
    {                                                                                           \
        float8 acc[SN_NET_ROWS][NV];                                                            \
        _Pragma("unroll")                                                                       \
        for (int r = 0; r < SN_NET_ROWS; ++r) {                                                 \
            _Pragma("unroll")                                                                   \
            for (int v = 0; v < (NV); ++v)                                                      \
                acc[r][v] = k0 == 0 ? (float8)(0.0f) : vload8(v, out + r * SN_NET_MAXW + q * SN_TN); \
        }                                                                                       \
        for (int k = 0; k < kn; ++k) {                                                          \
            float8 bv[NV];                                                                      \
            _Pragma("unroll")                                                                   \
            for (int v = 0; v < (NV); ++v) bv[v] = vload8(v, panel + k * SN_TN);               \
            _Pragma("unroll")                                                                   \
            for (int r = 0; r < SN_NET_ROWS; ++r) {                                             \
                const float8 av = (float8)(xs[r * SN_NET_KC + k]);                              \
                _Pragma("unroll")                                                               \
                for (int v = 0; v < (NV); ++v) acc[r][v] = fma(av, bv[v], acc[r][v]);          \
            }                                                                                   \
        }                                                                                       \
        if (last) {                                                                             \
            SN_NET_EPILOGUE(NV)                                                                 \
        } else {                                                                                \
            _Pragma("unroll")                                                                   \
            for (int r = 0; r < SN_NET_ROWS; ++r) {                                             \
                _Pragma("unroll")                                                               \
                for (int v = 0; v < (NV); ++v) vstore8(acc[r][v], v, out + r * SN_NET_MAXW + q * SN_TN); \
            }                                                                                   \
        }                                                                                       \
    }

// One panel of a later layer, NV float8 wide (as above): k = 0..K-1 from +0, then the epilogue.
#define SN_NET_PRIVATE_PANEL(NV)                                                                \
    {                                                                                           \
        float8 acc[SN_NET_ROWS][NV];                                                            \
        _Pragma("unroll")                                                                       \
        for (int r = 0; r < SN_NET_ROWS; ++r) {                                                 \
            _Pragma("unroll")                                                                   \
            for (int v = 0; v < (NV); ++v) acc[r][v] = (float8)(0.0f);                          \
        }                                                                                       \
        for (int k = 0; k < K; ++k) {                                                           \
            float8 bv[NV];                                                                      \
            _Pragma("unroll")                                                                   \
            for (int v = 0; v < (NV); ++v) bv[v] = vload8(v, panel + k * SN_TN);               \
            _Pragma("unroll")                                                                   \
            for (int r = 0; r < SN_NET_ROWS; ++r) {                                             \
                const float8 av = (float8)(in[r * SN_NET_MAXW + k]);                            \
                _Pragma("unroll")                                                               \
                for (int v = 0; v < (NV); ++v) acc[r][v] = fma(av, bv[v], acc[r][v]);          \
            }                                                                                   \
        }                                                                                       \
        SN_NET_EPILOGUE(NV)                                                                     \
    }

// First layer: A rows come from global memory, as floats or as bytes to be divided by `divisor` (the
// fused sn_bytes_to_float: (float)byte / divisor, correctly rounded, lane by lane). k runs in chunks of
// SN_NET_KC: each chunk of the SN_NET_ROWS input rows is staged in private memory once, and between chunks
// the accumulators wait in `out` as exact floats (same k order, same bits as one uninterrupted loop).
inline void sn_net_layer_first(__global const float *x, __global const uchar *xb, const float divisor,
                               const int from_bytes, const int N, const int i0, const int K, const int M,
                               __global const float *wp, __global const float *bp, const int act, float *out) {
    float xs[SN_NET_ROWS * SN_NET_KC];
    const int panels = (M + SN_TN - 1) / SN_TN;
    for (int k0 = 0; k0 < K; k0 += SN_NET_KC) {
        const int kn = min(SN_NET_KC, K - k0);
        const int last = (k0 + kn == K);
        // stage xs (rows, kn) = x[rows][k0 .. k0+kn)
        for (int r = 0; r < SN_NET_ROWS; ++r) {
            const int row = min(i0 + r, N - 1);
            float *dst = xs + r * SN_NET_KC;
            int kk = 0;
            if (from_bytes) {
                __global const uchar *src = xb + row * K + k0;
                for (; kk + 8 <= kn; kk += 8) vstore8(convert_float8(vload8(0, src + kk)) / divisor, 0, dst + kk);
                for (; kk < kn; ++kk) dst[kk] = (float)src[kk] / divisor;
            } else {
                __global const float *src = x + row * K + k0;
                for (; kk + 8 <= kn; kk += 8) vstore8(vload8(0, src + kk), 0, dst + kk);
                for (; kk < kn; ++kk) dst[kk] = src[kk];
            }
        }
        for (int q = 0; q < panels; ++q) {
            __global const float *panel = wp + (q * K + k0) * SN_TN;
            if (SN_NET_TNV > 1 && M - q * SN_TN <= 8) {
                SN_NET_FIRST_PANEL(1)
            } else {
                SN_NET_FIRST_PANEL(SN_NET_TNV)
            }
        }
    }
    if (K == 0) {
        // No k at all: every output is act(+0 + bias).
        for (int q = 0; q < panels; ++q) {
            float8 acc[SN_NET_ROWS][SN_NET_TNV];
            #pragma unroll
            for (int r = 0; r < SN_NET_ROWS; ++r) {
                #pragma unroll
                for (int v = 0; v < SN_NET_TNV; ++v) acc[r][v] = (float8)(0.0f);
            }
            SN_NET_EPILOGUE(SN_NET_TNV)
        }
    }
}

// Later layers: A rows are the previous layer's outputs in private memory.
inline void sn_net_layer_private(const float *in, const int K, const int M, __global const float *wp,
                                 __global const float *bp, const int act, float *out) {
    const int panels = (M + SN_TN - 1) / SN_TN;
    for (int q = 0; q < panels; ++q) {
        __global const float *panel = wp + q * K * SN_TN;
        if (SN_NET_TNV > 1 && M - q * SN_TN <= 8) {
            SN_NET_PRIVATE_PANEL(1)
        } else {
            SN_NET_PRIVATE_PANEL(SN_NET_TNV)
        }
    }
}

__kernel void sn_net(const int N, const int L, const int K0, const int M1, const int M2, const int M3, const int M4,
                     __global const float *x, __global const uchar *xbytes, const float divisor,
                     const int from_bytes, __global const float *w1, __global const float *b1, __global const float *w2,
                     __global const float *b2, __global const float *w3, __global const float *b3,
                     __global const float *w4, __global const float *b4,
                     const int act1, const int act2, const int act3, const int act4,
                     const int softmax, const int mode, __global float *y, __global int *pred) {
    const int i0 = (int)get_global_id(0) * SN_NET_ROWS;
    if (i0 >= N) return;

    float h0[SN_NET_ROWS * SN_NET_MAXW];
    float h1[SN_NET_ROWS * SN_NET_MAXW];
    // x (rows,K0) · W1 (K0,M1) -> h0 (rows,M1) -> W2 -> h1 (rows,M2) -> W3 -> h0 (rows,M3) -> W4 -> h1 (rows,M4)
    sn_net_layer_first(x, xbytes, divisor, from_bytes, N, i0, K0, M1, w1, b1, act1, h0);
    int M = M1;
    const float *last = h0;
    if (L > 1) { sn_net_layer_private(h0, M1, M2, w2, b2, act2, h1); M = M2; last = h1; }
    if (L > 2) { sn_net_layer_private(h1, M2, M3, w3, b3, act3, h0); M = M3; last = h0; }
    if (L > 3) { sn_net_layer_private(h0, M3, M4, w4, b4, act4, h1); M = M4; last = h1; }

    for (int r = 0; r < SN_NET_ROWS; ++r) {
        const int i = i0 + r;
        if (i >= N) break;
        const float *hr = last + r * SN_NET_MAXW;
        float row[SN_NET_MAXW];
        if (softmax) {
            // sn_softmax_rows, sequential: max, exp and a left-to-right sum, then the divisions.
            float m = -INFINITY;
            for (int j = 0; j < M; ++j) {
                const float v = hr[j];
                if (v > m) m = v;
            }
            // the exps 8 at a time (sn_exp8: sn_exp's bits lane by lane), the sum still left to right
            float s = 0.0f;
            int j = 0;
            for (; j + 8 <= M; j += 8) {
                const float8 e = sn_exp8(vload8(0, hr + j) - m);
                vstore8(e, 0, row + j);
                s = s + e.s0; s = s + e.s1; s = s + e.s2; s = s + e.s3;
                s = s + e.s4; s = s + e.s5; s = s + e.s6; s = s + e.s7;
            }
            for (; j < M; ++j) {
                const float e = sn_exp(hr[j] - m);
                row[j] = e;
                s = s + e;
            }
            j = 0;
            for (; j + 8 <= M; j += 8) vstore8(sn_canon8(vload8(0, row + j) / s), 0, row + j);
            for (; j < M; ++j) row[j] = sn_canon(row[j] / s);
        } else {
            for (int j = 0; j < M; ++j) row[j] = hr[j];
        }
        if (mode == 0) {
            __global float *yr = y + i * M;
            for (int j = 0; j < M; ++j) yr[j] = row[j];
        } else {
            // sn_argmax_rows: first largest, first NaN wins.
            int index = 0;
            if (M > 0) {
                float best = row[0];
                if (!isnan(best)) {
                    for (int j = 1; j < M; ++j) {
                        const float v = row[j];
                        if (isnan(v)) { index = j; break; }
                        if (v > best) { best = v; index = j; }
                    }
                }
            }
            pred[i] = index;
        }
    }
}
