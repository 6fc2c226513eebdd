// clblast_sgemm.c — times CLBlast's SGEMM (row-major, float32, C = A·B) on OpenCL device opencl:0 (the first
// device of the first platform, ScratchNet's numbering) for comparison with ScratchNet's kernels and NumPy.
// Comparison only: ScratchNet never links CLBlast.
//
// Build:  gcc -O2 -o clblast_sgemm Tests/Benchmarks/clblast_sgemm.c -lclblast -lOpenCL
//         (Debian/Ubuntu: apt-get install -y libclblast-dev)
// Usage:  clblast_sgemm [--repeats N] MxKxN [MxKxN ...]     (a bare number S means SxSxS)
//         e.g. clblast_sgemm 128 256 512 1024 2048 10000x784x50 10000x50x100 100x784x50
// Output: one JSON line per size, {"m":M,"n":N,"k":K,"gflops":G}, G = 2·M·N·K / best time of N timed runs
//         (default 5) after one untimed warm-up (which also triggers CLBlast's kernel compilation).
//         Errors go to stderr with exit status 1.

#define CL_TARGET_OPENCL_VERSION 120
#include <clblast_c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int fail(const char *what, int code) {
    fprintf(stderr, "clblast_sgemm: %s failed (%d)\n", what, code);
    return 1;
}

// Parses "MxKxN" or "S"; returns 0 on success.
static int parse_size(const char *s, size_t *m, size_t *k, size_t *n) {
    unsigned long a = 0, b = 0, c = 0;
    char tail = 0;
    if (sscanf(s, "%lux%lux%lu%c", &a, &b, &c, &tail) == 3 && a && b && c) {
        *m = a; *k = b; *n = c;
        return 0;
    }
    if (sscanf(s, "%lu%c", &a, &tail) == 1 && a) {
        *m = *k = *n = a;
        return 0;
    }
    return 1;
}

static float *random_matrix(size_t count, unsigned *seed) {
    float *p = malloc(count * sizeof(float));
    if (!p) return NULL;
    for (size_t i = 0; i < count; ++i) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i] = (float)(*seed >> 8) / (float)(1u << 24) - 0.5f;
    }
    return p;
}

int main(int argc, char **argv) {
    int repeats = 5;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "--repeats") == 0) {
        repeats = atoi(argv[2]);
        first = 3;
        if (repeats < 1) repeats = 1;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: clblast_sgemm [--repeats N] MxKxN [MxKxN ...]\n");
        return 1;
    }

    cl_platform_id platform;
    cl_device_id device;
    cl_int err = clGetPlatformIDs(1, &platform, NULL);
    if (err != CL_SUCCESS) return fail("clGetPlatformIDs", err);
    err = clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL);
    if (err != CL_SUCCESS) return fail("clGetDeviceIDs", err);
    cl_context context = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    if (err != CL_SUCCESS) return fail("clCreateContext", err);
    cl_command_queue queue = clCreateCommandQueue(context, device, 0, &err);
    if (err != CL_SUCCESS) return fail("clCreateCommandQueue", err);

    unsigned seed = 12345u;
    for (int arg = first; arg < argc; ++arg) {
        size_t m, k, n;
        if (parse_size(argv[arg], &m, &k, &n)) {
            fprintf(stderr, "clblast_sgemm: bad size '%s' (want MxKxN or S)\n", argv[arg]);
            return 1;
        }
        float *a = random_matrix(m * k, &seed), *b = random_matrix(k * n, &seed);
        if (!a || !b) return fail("malloc", 0);
        cl_mem da = clCreateBuffer(context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, m * k * sizeof(float), a, &err);
        if (err != CL_SUCCESS) return fail("clCreateBuffer(A)", err);
        cl_mem db = clCreateBuffer(context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, k * n * sizeof(float), b, &err);
        if (err != CL_SUCCESS) return fail("clCreateBuffer(B)", err);
        cl_mem dc = clCreateBuffer(context, CL_MEM_READ_WRITE, m * n * sizeof(float), NULL, &err);
        if (err != CL_SUCCESS) return fail("clCreateBuffer(C)", err);

        double best = 1e30;
        for (int r = 0; r <= repeats; ++r) {
            double start = now_seconds();
            // C (m,n) = 1 · A (m,k) · B (k,n) + 0 · C, all row-major
            CLBlastStatusCode status = CLBlastSgemm(
                CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo, m, n, k, 1.0f, da, 0, k, db, 0, n,
                0.0f, dc, 0, n, &queue, NULL);
            if (status != CLBlastSuccess) return fail("CLBlastSgemm", status);
            err = clFinish(queue);
            if (err != CL_SUCCESS) return fail("clFinish", err);
            double t = now_seconds() - start;
            if (r > 0 && t < best) best = t;  // run 0 is the warm-up
        }
        printf("{\"m\":%zu,\"n\":%zu,\"k\":%zu,\"gflops\":%.2f}\n", m, n, k, 2.0 * (double)m * (double)n * (double)k / best * 1e-9);
        fflush(stdout);
        clReleaseMemObject(da);
        clReleaseMemObject(db);
        clReleaseMemObject(dc);
        free(a);
        free(b);
    }
    clReleaseCommandQueue(queue);
    clReleaseContext(context);
    return 0;
}
