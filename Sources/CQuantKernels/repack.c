// Q5_0 blocks rewritten as Q8_0 blocks of the same values (quant_kernels.h says when and why).
#include "quant_kernels.h"

#include <string.h>

enum { Q5_0_BLOCK_BYTES = 22, Q8_0_BLOCK_BYTES = 34 };

int qk_repack_q5_0_as_q8_0(const void *src, void *dst, int64_t blocks) {
    if (!src || !dst || blocks < 0) return -1;
    const uint8_t *s = src;
    uint8_t *d = dst;
    for (int64_t b = 0; b < blocks; b++, s += Q5_0_BLOCK_BYTES, d += Q8_0_BLOCK_BYTES) {
        uint32_t qh;
        memcpy(&qh, s + 2, 4);
        memcpy(d, s, 2);  // the same f16 scale d
        const uint8_t *qs = s + 6;
        int8_t *q = (int8_t *)(d + 2);
        for (int e = 0; e < 16; e++) {  // weight e: low nibble of byte e; weight e + 16: its high nibble
            q[e] = (int8_t)(((qs[e] & 0x0F) | ((qh >> e) & 1) << 4) - 16);
            q[e + 16] = (int8_t)(((qs[e] >> 4) | ((qh >> (e + 16)) & 1) << 4) - 16);
        }
    }
    return 0;
}
