// zlib, used for gzip-compressed IDX files and deflate members of .npz archives. Install: apt-get install zlib1g-dev
#ifndef SCRATCHNET_CZLIB_SHIM_H
#define SCRATCHNET_CZLIB_SHIM_H
#include <zlib.h>
#endif
