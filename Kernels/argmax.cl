// argmax.cl — index of the largest value of each row, with NumPy's NaN rule, as Numerics.argmax.
//
// Purpose: out[i] = the first j with the largest x[i][j] (ties: the first one); if the row contains a NaN,
//   the index of the first NaN (NumPy treats NaN as the maximum); 0 for an empty row (M == 0).
// Memory layout: x is N×M row-major float32; out is N int32 values.
// Arguments:  sn_argmax_rows(int N, int M, global const float *x, global int *out)
// Work sizes: 1-D, one work-item per row; the host rounds N up to its fixed local size and work-items
//   with index >= N return.
// Tunables: none.

#pragma OPENCL FP_CONTRACT OFF

__kernel void sn_argmax_rows(const int N, const int M, __global const float *x, __global int *out) {
    const int i = (int)get_global_id(0);
    if (i >= N) return;
    if (M == 0) { out[i] = 0; return; }
    __global const float *xr = x + i * M;
    float best = xr[0];
    int index = 0;
    if (!isnan(best)) {
        for (int j = 1; j < M; ++j) {
            const float v = xr[j];
            if (isnan(v)) { index = j; break; }
            if (v > best) { best = v; index = j; }
        }
    }
    out[i] = index;
}
