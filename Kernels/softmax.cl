// softmax.cl — row-wise softmax for ScratchNet, sequential per row exactly as Numerics.softmax.
//
// Purpose: for each row: m = max by `v > m` starting from -inf; e[j] = sn_exp(x[j] - m); s = sum of e from
//   left to right starting at +0; y[j] = e[j] / s (correctly rounded division: the host builds with
//   -cl-fp32-correctly-rounded-divide-sqrt). A NaN or +inf in a row makes the whole row NaN (SN_NAN), as on the CPU.
//   The sum is deliberately sequential (no tree reduction), so the bits match the CPU path.
// Memory layout: x and y are N×M row-major float32; y may be x (each element is read before it is
//   overwritten, and only by its own work-item).
// Arguments:  sn_softmax_rows(int N, int M, global const float *x, global float *y)
// Work sizes: 1-D, one work-item per row; the host rounds N up to its fixed local size and work-items
//   with index >= N return.
// Tunables: none.

#pragma OPENCL FP_CONTRACT OFF

__kernel void sn_softmax_rows(const int N, const int M, __global const float *x, __global float *y) {
    const int i = (int)get_global_id(0);
    if (i >= N) return;
    __global const float *xr = x + i * M;
    __global float *yr = y + i * M;
    float m = -INFINITY;
    for (int j = 0; j < M; ++j) {
        const float v = xr[j];
        if (v > m) m = v;
    }
    float s = 0.0f;
    for (int j = 0; j < M; ++j) {
        const float e = sn_exp(xr[j] - m);
        yr[j] = e;
        s = s + e;
    }
    for (int j = 0; j < M; ++j) yr[j] = sn_canon(yr[j] / s);
}
