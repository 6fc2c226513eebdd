// Minimal reproducer: oclgrind 21.10 --uninitialized keeps the shadow memory of a released buffer and hands it
// to the next buffer that reuses its index (Memory::getNextBuffer recycles indices; the Uninitialized plugin
// has no memoryDeallocated handler and kernelBegin only poisons a buffer that has no shadow at all). A buffer
// that is then written only by a kernel inherits the old, smaller shadow: stores past its size are dropped,
// loads past it read as uninitialized -> false "Controlflow depends on uninitialized value" (fma is an
// unhandled builtin: any uninitialized operand lane is reported). Results stay correct.
// ScratchNet works around it on oclgrind only (OclgrindBufferQuirk in Sources/ScratchNetOpenCL/Runtime.swift:
// no buffer is released, so no index is reused). Measured with Debian's oclgrind 21.10:
//   cc -O1 -o stale-shadow Tests/Oclgrind/stale-shadow.c -lOpenCL
//   oclgrind --uninitialized --max-errors 100000 ./stale-shadow keep      -> 0 reports,    0 of 1024 wrong
//   oclgrind --uninitialized --max-errors 100000 ./stale-shadow recycle   -> 1008 reports, 0 of 1024 wrong
// (clEnqueueFillBuffer on the new buffer does not help: 1023 reports; a full clEnqueueWriteBuffer does, but it
// would also hide real uninitialised reads.)
// Usage: ./stale-shadow keep|recycle
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#define CK(x) do { cl_int e_ = (x); if (e_ != CL_SUCCESS) { fprintf(stderr, "%s = %d\n", #x, e_); exit(1); } } while (0)
static const char *src =
    "__kernel void fill(__global float *b) { b[get_global_id(0)] = 1.0f; }\n"
    "__kernel void use(__global const float *b, __global float *y) {\n"
    "    const size_t i = get_global_id(0); y[i] = fma(b[i], 2.0f, 1.0f); }\n";
int main(int argc, char **argv) {
    const int recycle = argc > 1 && strcmp(argv[1], "recycle") == 0;
    enum { N = 1024, SMALL = 16 };
    cl_platform_id p; cl_device_id d; cl_int e;
    CK(clGetPlatformIDs(1, &p, NULL));
    CK(clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &d, NULL));
    cl_context c = clCreateContext(NULL, 1, &d, NULL, NULL, &e); CK(e);
    cl_command_queue q = clCreateCommandQueue(c, d, 0, &e); CK(e);
    cl_program pr = clCreateProgramWithSource(c, 1, &src, NULL, &e); CK(e);
    CK(clBuildProgram(pr, 1, &d, "", NULL, NULL));
    cl_kernel fill = clCreateKernel(pr, "fill", &e); CK(e);
    cl_kernel use = clCreateKernel(pr, "use", &e); CK(e);
    cl_mem y = clCreateBuffer(c, CL_MEM_READ_WRITE, N * sizeof(float), NULL, &e); CK(e);

    // A small buffer, fully written by the host (its shadow: SMALL clean floats), then (recycle) released.
    float small[SMALL]; for (int i = 0; i < SMALL; ++i) small[i] = 3.0f;
    cl_mem a = clCreateBuffer(c, CL_MEM_READ_WRITE, sizeof small, NULL, &e); CK(e);
    CK(clEnqueueWriteBuffer(q, a, CL_TRUE, 0, sizeof small, small, 0, NULL, NULL));
    if (recycle) CK(clReleaseMemObject(a));

    // A larger buffer (no host pointer: "fresh"), written completely by a kernel, then read by another.
    cl_mem b = clCreateBuffer(c, CL_MEM_READ_WRITE, N * sizeof(float), NULL, &e); CK(e);
    size_t g = N;
    CK(clSetKernelArg(fill, 0, sizeof b, &b));
    CK(clEnqueueNDRangeKernel(q, fill, 1, NULL, &g, NULL, 0, NULL, NULL));
    CK(clSetKernelArg(use, 0, sizeof b, &b));
    CK(clSetKernelArg(use, 1, sizeof y, &y));
    CK(clEnqueueNDRangeKernel(q, use, 1, NULL, &g, NULL, 0, NULL, NULL));
    float out[N];
    CK(clEnqueueReadBuffer(q, y, CL_TRUE, 0, sizeof out, out, 0, NULL, NULL));
    int bad = 0; for (int i = 0; i < N; ++i) bad += out[i] != 3.0f;
    printf("%s: %d of %d results wrong\n", recycle ? "recycle" : "keep", bad, N);
    return bad != 0;
}
