// sn_math.cl — ScratchNet's bit-exact float math for OpenCL C, prepended to every other kernel file.
//
// Purpose: exp, log, sigmoid and ReLU with exactly the operations of Sources/ScratchNet/Core/Numerics.swift,
// in the same order, so every device gives the CPU path's bits. Only IEEE-exact operations are used
// (+, -, *, fma, rint, floor, compares, exponent-bit arithmetic); no built-in exp, no native_*, no
// contraction (FP_CONTRACT OFF), and the host builds with -cl-fp32-correctly-rounded-divide-sqrt so that
// `/` is correctly rounded.
// Layout/work sizes: none (functions only).

#pragma OPENCL FP_CONTRACT OFF

#define SN_LOG2E      0x1.715476p+0f
#define SN_LN2_HI     0x1.62e400p-1f
#define SN_LN2_LO     0x1.7f7d1cp-20f
#define SN_P0         0x1.a0d2cep-13f
#define SN_P1         0x1.6e879cp-10f
#define SN_P2         0x1.111210p-7f
#define SN_P3         0x1.555382p-5f
#define SN_P4         0x1.555554p-3f
#define SN_P5         0x1.000000p-1f
#define SN_EXP_HI     0x1.62e42ep+6f
#define SN_EXP_LO    -0x1.5cp+6f
#define SN_MAGIC      0x1.8p+23f
#define SN_MAGIC_BITS 0x4B400000u
// The only NaN ScratchNet's ops produce (Numerics.canonicalNaN): every NaN output is replaced by it, since
// IEEE 754 leaves a NaN result's sign and payload to the hardware (x86: 0xFFC00000, most GPUs: 0x7FC00000).
#define SN_NAN        as_float(0x7FC00000u)

inline float sn_canon(float x) {
    return isnan(x) ? SN_NAN : x;
}

inline float8 sn_canon8(float8 x) {
    return select(x, (float8)(SN_NAN), isnan(x));
}

// 2^n for an integer-valued float n in [-126, 127], built from exponent bits.
inline float sn_pow2(float n) {
    uint bits = as_uint(n + SN_MAGIC) - SN_MAGIC_BITS + 127u;
    return as_float(bits << 23);
}

// e^x: NaN -> SN_NAN, x > 88.72 -> +inf, x < -87 -> +0 (flush decided on the input: never a denormal).
inline float sn_exp(float x) {
    if (isnan(x)) return SN_NAN;
    if (x > SN_EXP_HI) return INFINITY;
    if (x < SN_EXP_LO) return 0.0f;
    float n = rint(x * SN_LOG2E);
    float r = fma(-n, SN_LN2_HI, x);
    r = fma(-n, SN_LN2_LO, r);
    float p = SN_P0;
    p = fma(p, r, SN_P1);
    p = fma(p, r, SN_P2);
    p = fma(p, r, SN_P3);
    p = fma(p, r, SN_P4);
    p = fma(p, r, SN_P5);
    float rr = r * r;
    float y = fma(p, rr, r) + 1.0f;
    float n1 = floor(n * 0.5f);
    float n2 = n - n1;
    return (y * sn_pow2(n1)) * sn_pow2(n2);
}

#define SN_SQRT2  0x1.6a09e6p+0f
#define SN_L0     0x1.204376p-4f
#define SN_L1    -0x1.d7a370p-4f
#define SN_L2     0x1.de4a34p-4f
#define SN_L3    -0x1.fcba9ep-4f
#define SN_L4     0x1.23d37ep-3f
#define SN_L5    -0x1.555ca0p-3f
#define SN_L6     0x1.999d58p-3f
#define SN_L7    -0x1.fffff8p-3f
#define SN_L8     0x1.555554p-2f
#define SN_LOG_HI 0x1.63p-1f
#define SN_LOG_LO -0x1.bd0106p-13f
// The book's 1e-7 (cross-entropy guard and optimizer epsilon) as the nearest float.
#define SN_EPS    0x1.ad7f2ap-24f

// log x (Numerics.log): NaN or x < 0 -> SN_NAN, +-0 -> -inf, +inf -> +inf. Cephes logf on
// x = m * 2^e with m in (sqrt2/2, sqrt2], f = m - 1.
inline float sn_log(float x) {
    if (isnan(x) || x < 0.0f) return SN_NAN;
    if (x == 0.0f) return -INFINITY;
    if (isinf(x)) return INFINITY;
    float v = x;
    int e = 0;
    if (v < FLT_MIN) {
        v = v * 0x1p23f;
        e = -23;
    }
    uint bits = as_uint(v);
    e += (int)(bits >> 23) - 127;
    float m = as_float((bits & 0x007FFFFFu) | 0x3F800000u);
    if (m > SN_SQRT2) {
        m = m * 0.5f;
        e += 1;
    }
    float f = m - 1.0f;
    float fe = (float)e;
    float z = f * f;
    float p = SN_L0;
    p = fma(p, f, SN_L1);
    p = fma(p, f, SN_L2);
    p = fma(p, f, SN_L3);
    p = fma(p, f, SN_L4);
    p = fma(p, f, SN_L5);
    p = fma(p, f, SN_L6);
    p = fma(p, f, SN_L7);
    p = fma(p, f, SN_L8);
    float y = (p * f) * z;
    y = fma(fe, SN_LOG_LO, y);
    y = fma(z, -0.5f, y);
    float r = f + y;
    r = fma(fe, SN_LOG_HI, r);
    return r;
}

inline float sn_sigmoid(float x) {
    return sn_canon(1.0f / (1.0f + sn_exp(-x)));
}

// max(x, 0); NaN -> SN_NAN, -0 becomes +0.
inline float sn_relu(float x) {
    return x > 0.0f ? x : (isnan(x) ? SN_NAN : 0.0f);
}

// Activation codes shared with the host (Activation enum order: identity, sigmoid, relu).
#define SN_ACT_IDENTITY 0
#define SN_ACT_SIGMOID  1
#define SN_ACT_RELU     2

inline float sn_activate(float x, int act) {
    if (act == SN_ACT_SIGMOID) return sn_sigmoid(x);
    if (act == SN_ACT_RELU) return sn_relu(x);
    return sn_canon(x);
}

// ---- float8 forms: the same operations lane by lane (used by the vectorised epilogues of net.cl). Where the
// scalar functions return early (NaN, overflow, flush to zero), these compute every lane and then select on
// the input exactly as those early returns decide, so each lane has the scalar function's bits.

inline float8 sn_pow2_8(float8 n) {
    uint8 bits = as_uint8(n + SN_MAGIC) - (uint8)(SN_MAGIC_BITS) + (uint8)(127u);
    return as_float8(bits << (uint8)(23u));
}

inline float8 sn_exp8(float8 x) {
    float8 n = rint(x * SN_LOG2E);
    float8 r = fma(-n, (float8)(SN_LN2_HI), x);
    r = fma(-n, (float8)(SN_LN2_LO), r);
    float8 p = (float8)(SN_P0);
    p = fma(p, r, (float8)(SN_P1));
    p = fma(p, r, (float8)(SN_P2));
    p = fma(p, r, (float8)(SN_P3));
    p = fma(p, r, (float8)(SN_P4));
    p = fma(p, r, (float8)(SN_P5));
    float8 rr = r * r;
    float8 y = fma(p, rr, r) + 1.0f;
    float8 n1 = floor(n * 0.5f);
    float8 n2 = n - n1;
    float8 e = (y * sn_pow2_8(n1)) * sn_pow2_8(n2);
    e = select(e, (float8)(0.0f), x < SN_EXP_LO);
    e = select(e, (float8)(INFINITY), x > SN_EXP_HI);
    return select(e, (float8)(SN_NAN), isnan(x));
}

inline float8 sn_activate8(float8 x, int act) {
    if (act == SN_ACT_SIGMOID) return sn_canon8(1.0f / (1.0f + sn_exp8(-x)));
    if (act == SN_ACT_RELU) {
        float8 r = select((float8)(0.0f), x, x > 0.0f);
        return select(r, (float8)(SN_NAN), isnan(x));
    }
    return sn_canon8(x);
}
