// Private to the kernels: the float and byte tables of the grid-coded i-quants' lattice points (iq_grids.c,
// generated), indexed by the offsets below, and their sign tables. Every entry point that may read them calls qk_iq_grids_init() first.
#ifndef QK_IQ_GRIDS_H
#define QK_IQ_GRIDS_H

#include "quant_kernels.h"

#include <stdint.h>

enum {
    QK_GRID_AT_IQ2XXS = 0, QK_GRID_AT_IQ2XS = 2048, QK_GRID_AT_IQ2S = 6144, QK_GRID_AT_IQ3XXS = 14336,
    QK_GRID_AT_IQ3S = 15360, QK_GRID_AT_IQ1S = 17408, QK_GRID_FLOATS = 33792
};

extern float qk_grid_table[QK_GRID_FLOATS];

/// The same points as int8 (IQ1_S's values times 8), at the same offsets: the int8-activation kernels' tables.
extern int8_t qk_grid_bytes[QK_GRID_FLOATS];

/// Sign bits as lane masks: entry s holds, in lane k, the float sign bit where bit k of s is set.
extern uint32_t qk_sign_masks[256 * 8];

/// 7 stored sign bits and their even eighth (IQ2_XXS, IQ2_XS, IQ3_XXS) as 8 bytes: −1 where set, +1 elsewhere.
extern uint64_t qk_even_sign_bytes[128];

/// Fills the tables above once (thread-safe; later calls return at once).
void qk_iq_grids_init(void);

#endif
