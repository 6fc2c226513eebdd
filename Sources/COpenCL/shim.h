// The OpenCL 1.2 host API, which every OpenCL 1.2-3.0 platform provides (we use nothing newer,
// so the same code runs on old GPU drivers and on pocl). Install: apt-get install ocl-icd-opencl-dev opencl-headers
#ifndef SCRATCHNET_COPENCL_SHIM_H
#define SCRATCHNET_COPENCL_SHIM_H
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#ifdef __APPLE__
#include <OpenCL/opencl.h>
#else
#include <CL/cl.h>
#endif
#endif
