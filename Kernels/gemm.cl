// gemm.cl — matrix product and fused affine layer (x·W + b, then an activation) for ScratchNet.
//
// Purpose: c (N,M) = a (N,K) · b (K,M)                          (sn_matmul; sn_matmul_packed with b packed)
//          y (N,M) = act(x (N,K) · w (K,M) + bias (1,M))         (sn_affine; sn_affine_packed with w packed)
//          p = b (K,M) copied into panels of SN_TN columns        (sn_pack_panels; see "Packed-B path")
// Numerics (the contract in Sources/ScratchNet/Core/Backend.swift, bitwise equal to the CPU path):
//   every output starts at +0 and accumulates acc = fma(a[i][k], b[k][j], acc) for k = 0..K-1 in increasing
//   order; affine then computes acc + bias[j] and sn_activate. NaN outputs are stored as SN_NAN (sn_math.cl). No split-K, no dot over k, no reduction tree:
//   the float8 vectors below hold 8 different OUTPUT columns, never 8 different k.
//
// Memory layout: all matrices row-major, densely packed (row stride = column count), float32.
// Arguments:  sn_matmul(int N, int K, int M, global const float *a, global const float *b, global float *c)
//             sn_affine(int N, int K, int M, global const float *x, global const float *w,
//                       global const float *bias, int act, global float *y)      act: SN_ACT_* in sn_math.cl
// Work sizes: 2-D. Each work-item computes a register tile of SN_TM rows × SN_TN columns (SN_TN/8 float8
//   accumulators per row), looping over k outermost. dim 0 = column tiles (ceil(M/SN_TN)), dim 1 = row tiles
//   (ceil(N/SN_TM)); the host rounds both up to its fixed local size, and work-items past the end return.
//   Tail tiles: rows past N re-read row N-1 and are not stored; columns past M load 0 and are not stored.
//   No local memory, no barriers (so early returns are safe).
// Tunables (-D on the host's build line; defaults let the file build alone): SN_TM, SN_TN (multiple of 8).
// Host-side limits: N*K, K*M and N*M all < 2^31 (int indexing), checked before launch.

#pragma OPENCL FP_CONTRACT OFF

#ifndef SN_TM
#define SN_TM 6
#endif
#ifndef SN_TN
#define SN_TN 16
#endif
#if (SN_TN % 8) != 0 || SN_TN < 8
#error "SN_TN must be a positive multiple of 8"
#endif
#if SN_TM < 1
#error "SN_TM must be at least 1"
#endif
#define SN_TNV (SN_TN / 8)

// The prologue shared by both tile functions: row pointers of A for rows i0.. (rows past N repeat row N-1:
// valid memory, results discarded) and the SN_TM×SN_TN register tile `acc`, zeroed (+0, the contract's start).
// Needs in scope: a, i0, N, K.
#define SN_GEMM_BEGIN_TILE()                                                                     \
    __global const float *arow[SN_TM];                                                           \
    _Pragma("unroll")                                                                            \
    for (int r = 0; r < SN_TM; ++r) arow[r] = a + min(i0 + r, N - 1) * K;                        \
    float8 acc[SN_TM][SN_TNV];                                                                   \
    _Pragma("unroll")                                                                            \
    for (int r = 0; r < SN_TM; ++r) {                                                            \
        _Pragma("unroll")                                                                        \
        for (int v = 0; v < SN_TNV; ++v) acc[r][v] = (float8)(0.0f);                             \
    }

// The epilogue shared by both tile functions: store the valid part of the register tile `acc` (rows i0..,
// columns j0..j0+width) to c, plain (matmul: canonical NaN only) or with bias and activation (affine).
// Needs in scope: acc, i0, j0, N, M, c, with_bias, full, width, bias, act.
#define SN_GEMM_STORE_TILE()                                                                     \
    _Pragma("unroll")                                                                            \
    for (int r = 0; r < SN_TM; ++r) {                                                            \
        const int i = i0 + r;                                                                    \
        if (i >= N) break;                                                                       \
        __global float *crow = c + i * M + j0;                                                   \
        if (!with_bias && full) {                                                                \
            _Pragma("unroll")                                                                    \
            for (int v = 0; v < SN_TNV; ++v) vstore8(sn_canon8(acc[r][v]), v, crow);             \
        } else {                                                                                 \
            float t[SN_TN];                                                                      \
            _Pragma("unroll")                                                                    \
            for (int v = 0; v < SN_TNV; ++v) vstore8(acc[r][v], v, t);                           \
            for (int l = 0; l < width; ++l)                                                      \
                crow[l] = with_bias ? sn_activate(t[l] + bias[j0 + l], act) : sn_canon(t[l]);   \
        }                                                                                        \
    }

// The shared body. `with_bias` is a compile-time constant at each call site, so the inlined copies for
// sn_matmul and sn_affine each keep only their own epilogue.
inline void sn_gemm_tile(const int N, const int K, const int M,
                         __global const float *a, __global const float *b,
                         const int with_bias, __global const float *bias, const int act,
                         __global float *c) {
    const int j0 = (int)get_global_id(0) * SN_TN;
    const int i0 = (int)get_global_id(1) * SN_TM;
    if (j0 >= M || i0 >= N) return;

    SN_GEMM_BEGIN_TILE()

    const int full = (j0 + SN_TN <= M);
    if (full) {
        __global const float *bcol = b + j0;
        for (int k = 0; k < K; ++k) {
            float8 bv[SN_TNV];
            #pragma unroll
            for (int v = 0; v < SN_TNV; ++v) bv[v] = vload8(v, bcol + k * M);
            #pragma unroll
            for (int r = 0; r < SN_TM; ++r) {
                const float8 av = (float8)(arow[r][k]);
                #pragma unroll
                for (int v = 0; v < SN_TNV; ++v) acc[r][v] = fma(av, bv[v], acc[r][v]);
            }
        }
    } else {
        // Column tail: lanes past M load +0 (they only feed discarded outputs).
        const int width = M - j0;
        for (int k = 0; k < K; ++k) {
            __global const float *brow = b + k * M + j0;
            float t[SN_TN];
            #pragma unroll
            for (int l = 0; l < SN_TN; ++l) t[l] = (l < width) ? brow[l] : 0.0f;
            float8 bv[SN_TNV];
            #pragma unroll
            for (int v = 0; v < SN_TNV; ++v) bv[v] = vload8(v, t);
            #pragma unroll
            for (int r = 0; r < SN_TM; ++r) {
                const float8 av = (float8)(arow[r][k]);
                #pragma unroll
                for (int v = 0; v < SN_TNV; ++v) acc[r][v] = fma(av, bv[v], acc[r][v]);
            }
        }
    }

    // Epilogue: store the valid part of the tile (plus bias and activation for the affine layer).
    const int width = min(SN_TN, M - j0);
    SN_GEMM_STORE_TILE()
}

__kernel void sn_matmul(const int N, const int K, const int M,
                        __global const float *a, __global const float *b, __global float *c) {
    sn_gemm_tile(N, K, M, a, b, 0, b, SN_ACT_IDENTITY, c);
}

__kernel void sn_affine(const int N, const int K, const int M,
                        __global const float *x, __global const float *w,
                        __global const float *bias, const int act, __global float *y) {
    sn_gemm_tile(N, K, M, x, w, 1, bias, act, y);
}

// ---------------------------------------------------------------------------------------------------------
// Packed-B path. B (K,M) is copied once into panels of SN_TN columns: panel q holds rows k = 0..K-1 of
// columns q*SN_TN .. q*SN_TN+SN_TN-1 contiguously (columns past M are +0), so the inner loop streams one
// contiguous panel instead of striding through B by M floats per k. Packing is a pure copy (no arithmetic),
// so the packed product has exactly the bits of the unpacked one.
//
// sn_pack_panels(int K, int M, global const float *b, global float *p)
//   p[(q*K + k)*SN_TN + l] = b[k*M + q*SN_TN + l] (or +0 past M); 1-D, one work-item per (q, k) row of
//   SN_TN floats, global = ceil(M/SN_TN)*K rounded up to the host's local size.
// sn_matmul_packed(int N, int K, int M, global const float *a, global const float *bp, global float *c,
//                  int rows_fast)
// sn_affine_packed(int N, int K, int M, global const float *x, global const float *wp,
//                  global const float *bias, int act, global float *y, int rows_fast)
//   As sn_matmul / sn_affine with b / w packed. Traversal order (the host chooses it by cache fit):
//   rows_fast = 1: dim 0 = row tiles, dim 1 = panels (work-items in launch order share one B panel: chosen
//   when a panel, K*SN_TN floats, stays in cache); 0: dim 0 = panels, dim 1 = row tiles (they share A rows).

__kernel void sn_pack_panels(const int K, const int M, __global const float *b, __global float *p) {
    const int g = (int)get_global_id(0);
    const int panels = (M + SN_TN - 1) / SN_TN;
    if (g >= panels * K) return;
    const int q = g / K;
    const int k = g - q * K;
    const int j0 = q * SN_TN;
    const int width = min(SN_TN, M - j0);
    __global const float *src = b + k * M + j0;
    __global float *dst = p + g * SN_TN;
    if (width == SN_TN) {
        #pragma unroll
        for (int v = 0; v < SN_TNV; ++v) vstore8(vload8(v, src), v, dst);
    } else {
        for (int l = 0; l < SN_TN; ++l) dst[l] = (l < width) ? src[l] : 0.0f;
    }
}

inline void sn_gemm_packed_tile(const int N, const int K, const int M,
                                __global const float *a, __global const float *bp,
                                const int with_bias, __global const float *bias, const int act,
                                __global float *c, const int rows_fast) {
    const int g0 = (int)get_global_id(0);
    const int g1 = (int)get_global_id(1);
    const int q = rows_fast ? g1 : g0;
    const int i0 = (rows_fast ? g0 : g1) * SN_TM;
    const int j0 = q * SN_TN;
    if (j0 >= M || i0 >= N) return;

    SN_GEMM_BEGIN_TILE()
    __global const float *panel = bp + q * K * SN_TN;
    for (int k = 0; k < K; ++k) {
        float8 bv[SN_TNV];
        #pragma unroll
        for (int v = 0; v < SN_TNV; ++v) bv[v] = vload8(v, panel + k * SN_TN);
        #pragma unroll
        for (int r = 0; r < SN_TM; ++r) {
            const float8 av = (float8)(arow[r][k]);
            #pragma unroll
            for (int v = 0; v < SN_TNV; ++v) acc[r][v] = fma(av, bv[v], acc[r][v]);
        }
    }

    const int full = (j0 + SN_TN <= M);
    const int width = min(SN_TN, M - j0);
    SN_GEMM_STORE_TILE()
}

__kernel void sn_matmul_packed(const int N, const int K, const int M,
                               __global const float *a, __global const float *bp, __global float *c,
                               const int rows_fast) {
    sn_gemm_packed_tile(N, K, M, a, bp, 0, bp, SN_ACT_IDENTITY, c, rows_fast);
}

__kernel void sn_affine_packed(const int N, const int K, const int M,
                               __global const float *x, __global const float *wp,
                               __global const float *bias, const int act, __global float *y,
                               const int rows_fast) {
    sn_gemm_packed_tile(N, K, M, x, wp, 1, bias, act, y, rows_fast);
}
