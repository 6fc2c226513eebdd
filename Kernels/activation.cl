// activation.cl — element-wise activation y = act(x) for ScratchNet (identity, sigmoid, ReLU).
//
// Purpose: y[i] = sn_activate(x[i], act) with the bit-exact formulas of sn_math.cl (= Numerics.swift).
// Memory layout: x and y are `n` densely packed float32 values (any matrix shape, flattened); y may be x
//   (each work-item reads its element before writing it).
// Arguments:  sn_apply(int n, int act, global const float *x, global float *y)     act: SN_ACT_* in sn_math.cl
// Work sizes: 1-D, one element per work-item; the host rounds n up to its fixed local size and
//   work-items with index >= n return.
// Tunables: none.

#pragma OPENCL FP_CONTRACT OFF

__kernel void sn_apply(const int n, const int act, __global const float *x, __global float *y) {
    const int i = (int)get_global_id(0);
    if (i >= n) return;
    y[i] = sn_activate(x[i], act);
}
