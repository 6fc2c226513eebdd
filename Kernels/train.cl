// train.cl — the training ops of ScratchNet: transposed products (weight and input gradients), column sums
// (bias gradient), activation backward passes, the two losses, the SoftmaxWithLoss backward pass and the
// optimizer step.
//
// Purpose (the "Training ops" contract of Sources/ScratchNet/Core/Backend.swift; every NaN output is SN_NAN):
//   sn_matmul_tn:       c (K,M) = aᵀ · b for a (N,K), b (N,M); c[i][j] starts at +0 and accumulates
//                       fma(a[n][i], b[n][j], acc) for n = 0..N-1 in increasing order (N = 0: all +0).
//   sn_matmul_nt:       c (N,K) = a · bᵀ for a (N,M), b (K,M); c[i][j] starts at +0 and accumulates
//                       fma(a[i][m], b[j][m], acc) for m = 0..M-1 in increasing order.
//   sn_sum_columns:     y[j] = ((+0 + x[0][j]) + x[1][j]) + ... + x[N-1][j] for x (N,M), y (1,M).
//   sn_act_backward:    dx = identity: dy; sigmoid: (dy * (1 - y)) * y; relu: y <= 0 ? +0 : dy.
//   sn_loss, sn_loss_group: one value written to loss[index] (same bits from both; see Work sizes):
//                       mode 0, cross-entropy with labels t (N,1): rowᵢ = sn_log(y[i][tᵢ] + SN_EPS), a NaN row
//                         for a label that is not an integer in 0..C-1; loss = -s / (float)N
//                       mode 1, cross-entropy with one-hot t (N,C): rowᵢ = Σⱼ t[i][j] * sn_log(y[i][j] + SN_EPS),
//                         j ascending from +0; loss = -s / (float)N   (N = 0 gives NaN)
//                       mode 2, sum of squares over all N*C elements of y and t: termₑ = d * d with d = y - t,
//                         e in row-major order; loss = 0.5f * s
//                       where s = the terms (rows, or elements) summed in increasing order from +0.
//   sn_softmax_ce_backward: dx[i][j] = (y[i][j] - t[i][j]) / (float)N, t one-hot (N,C) or labels (N,1)
//                       (for labels t[i][j] is 1 at j == tᵢ, else nothing is subtracted).
//   sn_update:          one optimizer step, element-wise in place (UpdateRule in Backend.swift):
//                       code 0 sgd:      p = p - c0 * g
//                       code 1 momentum: v = c1 * v - c0 * g; p = p + v                         (s0 = v)
//                       code 2 adaGrad:  h = h + g * g; p = p - (c0 * g) / (sqrt(h) + SN_EPS)   (s0 = h)
//                       code 3 adam:     m = m + c1 * (g - m); v = v + c2 * (g * g - v);
//                                        p = p - (c0 * m) / (sqrt(v) + SN_EPS)                (s0 = m, s1 = v)
// Numerics: no contraction (FP_CONTRACT OFF, fma only where written), `/` and sqrt correctly rounded (the host
//   builds with -cl-fp32-correctly-rounded-divide-sqrt). No reduction is split or reordered: the products keep
//   one accumulator per output (the float8 vectors hold 8 different OUTPUT columns, never 8 different n or m),
//   and every sum is walked by one work-item in the contract's order.
//
// Memory layout: all matrices row-major, densely packed (row stride = column count), float32. Labels are
//   floats holding class indices. Element-wise ops take flattened arrays of n values; their output may be an
//   input (each work-item reads its element before writing it).
// Arguments:
//   sn_matmul_tn(int N, int K, int M, global const float *a, global const float *b, global float *c)
//   sn_matmul_nt(int N, int K, int M, global const float *a, global const float *b, global float *c)
//       (the shapes of the contract above: for sn_matmul_tn N is the summed dimension, for sn_matmul_nt M is)
//   sn_sum_columns(int N, int M, global const float *x, global float *y)
//   sn_act_backward(int n, int act, global const float *y, global const float *dy, global float *dx)
//                                                                         act: SN_ACT_* of sn_math.cl
//   sn_loss / sn_loss_group(int mode, int N, int C, global const float *y, global const float *t,
//                           global float *loss, int index)
//   sn_softmax_ce_backward(int N, int C, int labels, global const float *y, global const float *t,
//                          global float *dx)
//   sn_update(int n, int code, float c0, float c1, float c2, global float *p, global const float *g,
//             global float *s0, global float *s1)            (unused state buffers: any buffer)
// Work sizes:
//   sn_matmul_tn, sn_matmul_nt: 2-D, one SN_TM×SN_TN register tile of c per work-item (as gemm.cl):
//     dim 0 = column tiles of c, dim 1 = row tiles of c, each rounded up to the host's fixed local size;
//     work-items past the end return. Tail rows/columns re-read the last valid row/column (valid memory,
//     results discarded). No local memory, no barriers.
//   sn_sum_columns: 1-D, one work-item per column (walking the rows top to bottom; neighbouring work-items
//     read neighbouring addresses).
//   sn_act_backward, sn_softmax_ce_backward: 1-D, one element per work-item.
//   sn_update: 1-D, 8 consecutive elements per work-item (float8 lanes; the last work-item takes the tail
//     through private arrays), global = ceil(n/8) rounded up to the host's local size.
//   sn_loss: ONE work-item (global = local = 1) computes the terms and sums them in order: used on CPUs
//     (pocl runs barriers inside loops slowly; the terms are cheap next to a launch).
//   sn_loss_group: exactly ONE work-group (global = local = L <= SN_LOSS_WG, any L >= 1), used on GPUs. Terms
//     are computed in chunks of L (work-item l computes term base + l into local memory); after a barrier
//     work-item 0 adds the chunk's terms to the running sum in increasing order, so the sum is sequential
//     over all terms as in sn_loss.
// Tunables (-D; defaults let the file build alone): SN_TM, SN_TN (multiple of 8; the same as gemm.cl's),
//   SN_LOSS_WG (the largest sn_loss_group work-group, the size of its local array).
// Host-side limits: every matrix has fewer than 2^31 values (int indexing); N*C < 2^31 for sn_loss.

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
#ifndef SN_LOSS_WG
#define SN_LOSS_WG 64
#endif

// Stores the valid part (rows i0.., columns j0..j0+width) of the register tile `acc` to c (rows x cols),
// NaNs canonical.
#define SN_TRAIN_STORE_TILE(rows, cols)                                                          \
    {                                                                                            \
    const int width = min(SN_TN, (cols) - j0);                                                   \
    _Pragma("unroll")                                                                            \
    for (int r = 0; r < SN_TM; ++r) {                                                            \
        const int i = i0 + r;                                                                    \
        if (i >= (rows)) break;                                                                  \
        __global float *crow = c + i * (cols) + j0;                                              \
        if (width == SN_TN) {                                                                    \
            _Pragma("unroll")                                                                    \
            for (int v = 0; v < SN_TNV; ++v) vstore8(sn_canon8(acc[r][v]), v, crow);             \
        } else {                                                                                 \
            float t[SN_TN];                                                                      \
            _Pragma("unroll")                                                                    \
            for (int v = 0; v < SN_TNV; ++v) vstore8(acc[r][v], v, t);                           \
            for (int l = 0; l < width; ++l) crow[l] = sn_canon(t[l]);                            \
        }                                                                                        \
    }                                                                                            \
    }

// The zeroed SN_TM×SN_TN register tile (+0, the contract's start).
#define SN_TRAIN_ZERO_TILE()                                                                     \
    float8 acc[SN_TM][SN_TNV];                                                                   \
    _Pragma("unroll")                                                                            \
    for (int r = 0; r < SN_TM; ++r) {                                                            \
        _Pragma("unroll")                                                                        \
        for (int v = 0; v < SN_TNV; ++v) acc[r][v] = (float8)(0.0f);                             \
    }

// c (K,M) = aᵀ (K,N) · b (N,M). Per n: SN_TM consecutive values of row n of a (the rows of c) and SN_TN
// consecutive values of row n of b (the columns of c): both contiguous, so this is gemm.cl's row-major tile
// with a read across instead of down.
__kernel void sn_matmul_tn(const int N, const int K, const int M,
                           __global const float *a, __global const float *b, __global float *c) {
    const int j0 = (int)get_global_id(0) * SN_TN;
    const int i0 = (int)get_global_id(1) * SN_TM;
    if (j0 >= M || i0 >= K) return;

    // Columns of a (rows of c) past K re-read column K-1.
    int col[SN_TM];
    #pragma unroll
    for (int r = 0; r < SN_TM; ++r) col[r] = min(i0 + r, K - 1);
    SN_TRAIN_ZERO_TILE()

    if (j0 + SN_TN <= M) {
        for (int n = 0; n < N; ++n) {
            __global const float *arow = a + n * K;
            __global const float *brow = b + n * M + j0;
            float8 bv[SN_TNV];
            #pragma unroll
            for (int v = 0; v < SN_TNV; ++v) bv[v] = vload8(v, brow);
            #pragma unroll
            for (int r = 0; r < SN_TM; ++r) {
                const float8 av = (float8)(arow[col[r]]);
                #pragma unroll
                for (int v = 0; v < SN_TNV; ++v) acc[r][v] = fma(av, bv[v], acc[r][v]);
            }
        }
    } else if (M - j0 <= 8) {
        // Narrow column tail (e.g. 50 = 3*16 + 2): one float8 per row is enough; lanes past M load +0 (they
        // only feed discarded outputs) and acc[r][1..] stay +0, never stored.
        const int width = M - j0;
        for (int n = 0; n < N; ++n) {
            __global const float *arow = a + n * K;
            __global const float *brow = b + n * M + j0;
            float t[8];
            #pragma unroll
            for (int l = 0; l < 8; ++l) t[l] = (l < width) ? brow[l] : 0.0f;
            const float8 bv = vload8(0, t);
            #pragma unroll
            for (int r = 0; r < SN_TM; ++r) acc[r][0] = fma((float8)(arow[col[r]]), bv, acc[r][0]);
        }
    } else {
        // Column tail: lanes past M load +0 (they only feed discarded outputs).
        const int width = M - j0;
        for (int n = 0; n < N; ++n) {
            __global const float *arow = a + n * K;
            __global const float *brow = b + n * M + j0;
            float t[SN_TN];
            #pragma unroll
            for (int l = 0; l < SN_TN; ++l) t[l] = (l < width) ? brow[l] : 0.0f;
            float8 bv[SN_TNV];
            #pragma unroll
            for (int v = 0; v < SN_TNV; ++v) bv[v] = vload8(v, t);
            #pragma unroll
            for (int r = 0; r < SN_TM; ++r) {
                const float8 av = (float8)(arow[col[r]]);
                #pragma unroll
                for (int v = 0; v < SN_TNV; ++v) acc[r][v] = fma(av, bv[v], acc[r][v]);
            }
        }
    }
    SN_TRAIN_STORE_TILE(K, M)
}

// c (N,K) = a (N,M) · bᵀ (M,K). Per m: column m of SN_TM rows of a and column m of SN_TN rows of b (the
// columns of c), each row walked left to right; the SN_TN values of b are gathered into float8 vectors.
__kernel void sn_matmul_nt(const int N, const int K, const int M,
                           __global const float *a, __global const float *b, __global float *c) {
    const int j0 = (int)get_global_id(0) * SN_TN;
    const int i0 = (int)get_global_id(1) * SN_TM;
    if (j0 >= K || i0 >= N) return;

    // Rows past N (of a) and past K (of b) re-read the last row.
    __global const float *arow[SN_TM];
    #pragma unroll
    for (int r = 0; r < SN_TM; ++r) arow[r] = a + min(i0 + r, N - 1) * M;
    __global const float *brow[SN_TN];
    #pragma unroll
    for (int l = 0; l < SN_TN; ++l) brow[l] = b + min(j0 + l, K - 1) * M;
    SN_TRAIN_ZERO_TILE()

    if (K - j0 <= 8) {
        // Narrow column tail: gather 8 columns only (acc[r][1..] stay +0, never stored).
        for (int m = 0; m < M; ++m) {
            float t[8];
            #pragma unroll
            for (int l = 0; l < 8; ++l) t[l] = brow[l][m];
            const float8 bv = vload8(0, t);
            #pragma unroll
            for (int r = 0; r < SN_TM; ++r) acc[r][0] = fma((float8)(arow[r][m]), bv, acc[r][0]);
        }
        SN_TRAIN_STORE_TILE(N, K)
        return;
    }
    for (int m = 0; m < M; ++m) {
        float t[SN_TN];
        #pragma unroll
        for (int l = 0; l < SN_TN; ++l) t[l] = brow[l][m];
        float8 bv[SN_TNV];
        #pragma unroll
        for (int v = 0; v < SN_TNV; ++v) bv[v] = vload8(v, t);
        #pragma unroll
        for (int r = 0; r < SN_TM; ++r) {
            const float8 av = (float8)(arow[r][m]);
            #pragma unroll
            for (int v = 0; v < SN_TNV; ++v) acc[r][v] = fma(av, bv[v], acc[r][v]);
        }
    }
    SN_TRAIN_STORE_TILE(N, K)
}

__kernel void sn_sum_columns(const int N, const int M, __global const float *x, __global float *y) {
    const size_t g = get_global_id(0);
    if (g >= (size_t)M) return;
    const int j = (int)g;
    float s = 0.0f;
    for (int n = 0; n < N; ++n) s = s + x[n * M + j];
    y[j] = sn_canon(s);
}

__kernel void sn_act_backward(const int n, const int act, __global const float *y, __global const float *dy,
                              __global float *dx) {
    const size_t g = get_global_id(0);
    if (g >= (size_t)n) return;
    const int i = (int)g;
    const float d = dy[i];
    const float v = y[i];
    float r;
    if (act == SN_ACT_SIGMOID) {
        r = (d * (1.0f - v)) * v;
    } else if (act == SN_ACT_RELU) {
        r = v <= 0.0f ? 0.0f : d;
    } else {
        r = d;
    }
    dx[i] = sn_canon(r);
}

// The class index held by the float label `v` if it is an integer in 0..C-1, else -1 (NaN, ±inf, fractions,
// out of range; -0 counts as 0). The same tests as Reference.labelIndex: v >= 0, v < (float)C (rounded to
// nearest, as Swift's Float(C)), floor(v) == v, and then the integer itself < C.
inline int sn_label(const float v, const int C) {
    if (!(v >= 0.0f && v < (float)C) || floor(v) != v) return -1;
    const int k = (int)v;
    return k < C ? k : -1;
}

// Term `e` of a loss: a row's cross-entropy (modes 0 and 1) or one squared difference (mode 2).
inline float sn_loss_term(const int mode, const int e, const int C, __global const float *y,
                          __global const float *t) {
    if (mode == 0) {
        const int k = sn_label(t[e], C);
        return k < 0 ? SN_NAN : sn_log(y[e * C + k] + SN_EPS);
    }
    if (mode == 1) {
        __global const float *yr = y + e * C;
        __global const float *tr = t + e * C;
        float r = 0.0f;
        for (int j = 0; j < C; ++j) r = r + tr[j] * sn_log(yr[j] + SN_EPS);
        return r;
    }
    const float d = y[e] - t[e];
    return d * d;
}

// One work-item does it all: the terms and their sum, in order. For CPUs (pocl): no barriers, no local memory.
__kernel void sn_loss(const int mode, const int N, const int C, __global const float *y,
                      __global const float *t, __global float *loss, const int index) {
    if (get_global_id(0) != 0) return;
    float s = 0.0f;
    if (mode == 2) {
        // The same operations as sn_loss_term's mode 2, in a loop of their own (no per-term mode tests).
        const int terms = N * C;
        for (int e = 0; e < terms; ++e) {
            const float d = y[e] - t[e];
            s = s + d * d;
        }
        loss[index] = sn_canon(0.5f * s);
        return;
    }
    for (int e = 0; e < N; ++e) s = s + sn_loss_term(mode, e, C, y, t);
    loss[index] = sn_canon(-s / (float)N);
}

// One work-group of L work-items (L <= SN_LOSS_WG): the terms in parallel, in chunks of L, each chunk then
// added to the running sum in order by work-item 0. For GPUs, where one work-item alone is slow.
__kernel void sn_loss_group(const int mode, const int N, const int C, __global const float *y,
                            __global const float *t, __global float *loss, const int index) {
    __local float part[SN_LOSS_WG];
    const int l = (int)get_local_id(0);
    const int L = (int)get_local_size(0);
    const int terms = mode == 2 ? N * C : N;
    float s = 0.0f;  // meaningful in work-item 0 only
    // Every work-item runs the same number of chunks (the barriers are reached uniformly). Written so that
    // no index overflows int even for terms close to 2^31, and without a `terms % L` next to `terms / L`:
    // LLVM's DivRemPairs then inserts a `freeze`, which oclgrind's --uninitialized check cannot execute
    // (it aborts the kernel, silently leaving loss[index] unwritten).
    const int chunks = terms > 0 ? (terms - 1) / L + 1 : 0;
    for (int chunk = 0; chunk < chunks; ++chunk) {
        const int base = chunk * L;
        const int count = min(L, terms - base);
        part[l] = l < count ? sn_loss_term(mode, base + l, C, y, t) : 0.0f;
        barrier(CLK_LOCAL_MEM_FENCE);
        if (l == 0) {
            for (int q = 0; q < count; ++q) s = s + part[q];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0) loss[index] = sn_canon(mode == 2 ? 0.5f * s : -s / (float)N);
}

__kernel void sn_softmax_ce_backward(const int N, const int C, const int labels, __global const float *y,
                                     __global const float *t, __global float *dx) {
    const size_t g = get_global_id(0);
    const int n = N * C;
    if (g >= (size_t)n) return;
    const int e = (int)g;
    const float v = y[e];
    float d;
    if (labels) {
        const int i = e / C;
        const int j = e - i * C;
        d = sn_label(t[i], C) == j ? v - 1.0f : v;
    } else {
        d = v - t[e];
    }
    dx[e] = sn_canon(d / (float)N);
}

// The step on 8 values at once (lane by lane: each lane has the scalar formula's bits). s0/s1 are read and
// written only by the rules that keep them.
inline void sn_update8(const int code, const float c0, const float c1, const float c2,
                       float8 *p, const float8 g, float8 *s0, float8 *s1) {
    if (code == 1) {
        const float8 v = sn_canon8(c1 * *s0 - c0 * g);
        *s0 = v;
        *p = sn_canon8(*p + v);
    } else if (code == 2) {
        const float8 h = sn_canon8(*s0 + g * g);
        *s0 = h;
        *p = sn_canon8(*p - (c0 * g) / (sqrt(h) + SN_EPS));
    } else if (code == 3) {
        const float8 m = sn_canon8(*s0 + c1 * (g - *s0));
        const float8 v = sn_canon8(*s1 + c2 * (g * g - *s1));
        *s0 = m;
        *s1 = v;
        *p = sn_canon8(*p - (c0 * m) / (sqrt(v) + SN_EPS));
    } else {
        *p = sn_canon8(*p - c0 * g);
    }
}

__kernel void sn_update(const int n, const int code, const float c0, const float c1, const float c2,
                        __global float *p, __global const float *g, __global float *s0, __global float *s1) {
    const size_t item = get_global_id(0);
    if (item >= ((size_t)n + 7) / 8) return;
    const int i0 = (int)item * 8;
    const int states = code == 3 ? 2 : (code == 0 ? 0 : 1);
    if (i0 + 8 <= n) {
        float8 pv = vload8(0, p + i0);
        const float8 gv = vload8(0, g + i0);
        float8 a = states > 0 ? vload8(0, s0 + i0) : (float8)(0.0f);
        float8 b = states > 1 ? vload8(0, s1 + i0) : (float8)(0.0f);
        sn_update8(code, c0, c1, c2, &pv, gv, &a, &b);
        vstore8(pv, 0, p + i0);
        if (states > 0) vstore8(a, 0, s0 + i0);
        if (states > 1) vstore8(b, 0, s1 + i0);
    } else {
        // Tail: the valid lanes through private arrays; lanes past n compute on zeros and are not stored.
        const int width = n - i0;
        float tp[8], tg[8], ta[8], tb[8];
        for (int l = 0; l < 8; ++l) {
            const int ok = l < width;
            tp[l] = ok ? p[i0 + l] : 0.0f;
            tg[l] = ok ? g[i0 + l] : 0.0f;
            ta[l] = ok && states > 0 ? s0[i0 + l] : 0.0f;
            tb[l] = ok && states > 1 ? s1[i0 + l] : 0.0f;
        }
        float8 pv = vload8(0, tp), a = vload8(0, ta), b = vload8(0, tb);
        sn_update8(code, c0, c1, c2, &pv, vload8(0, tg), &a, &b);
        vstore8(pv, 0, tp);
        vstore8(a, 0, ta);
        vstore8(b, 0, tb);
        for (int l = 0; l < width; ++l) {
            p[i0 + l] = tp[l];
            if (states > 0) s0[i0 + l] = ta[l];
            if (states > 1) s1[i0 + l] = tb[l];
        }
    }
}
