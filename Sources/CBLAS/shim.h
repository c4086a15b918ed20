// OpenBLAS (cblas) and LAPACKE, wrapped once in Sources/Shared/Kernels.
#include <cblas.h>
#include <lapacke.h>
void openblas_set_num_threads(int num_threads);
