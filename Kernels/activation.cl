// activation.cl — element-wise ops for ScratchNet: activations (identity, sigmoid, ReLU) and the book's
// pixel normalisation (bytes to floats).
//
// Purpose: sn_apply:          y[i] = sn_activate(x[i], act), the bit-exact formulas of sn_math.cl (= Numerics.swift).
//          sn_bytes_to_float: y[i] = (float)x[i] / divisor, correctly rounded (the host builds with
//                             -cl-fp32-correctly-rounded-divide-sqrt): NumPy's x.astype(float32) / 255.0.
// Memory layout: x and y are `n` densely packed float32 values (any matrix shape, flattened); y may be x
//   (each work-item reads its element before writing it).
// Arguments:  sn_apply(int n, int act, global const float *x, global float *y)     act: SN_ACT_* in sn_math.cl
//             sn_bytes_to_float(int n, float divisor, global const uchar *x, global float *y)
// Work sizes: 1-D. sn_apply: one element per work-item; sn_bytes_to_float: SN_BYTES_PER_ITEM (16)
//   consecutive elements per work-item (two uchar8 loads, two float8 stores). The host rounds the item count
//   up to its fixed local size; work-items past the end return, the last one converts the tail one by one.
// Tunables: none.

#pragma OPENCL FP_CONTRACT OFF

__kernel void sn_apply(const int n, const int act, __global const float *x, __global float *y) {
    const int i = (int)get_global_id(0);
    if (i >= n) return;
    y[i] = sn_activate(x[i], act);
}

#define SN_BYTES_PER_ITEM 16

__kernel void sn_bytes_to_float(const int n, const float divisor, __global const uchar *x, __global float *y) {
    const int i0 = (int)get_global_id(0) * SN_BYTES_PER_ITEM;
    if (i0 >= n) return;
    if (i0 + SN_BYTES_PER_ITEM <= n) {
        // 16 independent correctly rounded divisions (lane-wise, no reassociation), as two float8 halves:
        // float16 values would be passed in AVX-512 registers, which compilers warn about on AVX2 CPUs.
        vstore8(convert_float8(vload8(0, x + i0)) / divisor, 0, y + i0);
        vstore8(convert_float8(vload8(0, x + i0 + 8)) / divisor, 0, y + i0 + 8);
    } else {
        for (int i = i0; i < n; ++i) y[i] = (float)x[i] / divisor;
    }
}
