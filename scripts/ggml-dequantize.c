// ggml's own dequantizers on a GGUF file's tensors, for scripts/check-quant-files.py where gguf-py has none
// (Q1_0): every tensor of the given type(s) written as raw little-endian float32 to OUT/<name>.f32.
//   ggml-dequantize MODEL.gguf OUT TYPE [TYPE …]        TYPE: a ggml type name as ggml spells it, e.g. q1_0
// Built by check-quant-files.py against the llama.cpp of scripts/llamacpp-lib.sh:
//   gcc -O2 -I SRC/ggml/include scripts/ggml-dequantize.c -L SRC/build/bin -lggml-base -Wl,-rpath,SRC/build/bin
#include "ggml.h"
#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s MODEL.gguf OUT TYPE [TYPE ...]\n", argv[0]); return 2; }
    struct gguf_init_params params = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *ctx = gguf_init_from_file(argv[1], params);
    if (!ctx) { fprintf(stderr, "cannot read %s\n", argv[1]); return 1; }
    FILE *in = fopen(argv[1], "rb");
    if (!in) { fprintf(stderr, "cannot open %s\n", argv[1]); return 1; }
    const size_t base = gguf_get_data_offset(ctx);
    int written = 0;
    for (int64_t i = 0; i < gguf_get_n_tensors(ctx); i++) {
        const enum ggml_type type = gguf_get_tensor_type(ctx, i);
        const struct ggml_type_traits *tr = ggml_get_type_traits(type);
        int wanted = 0;
        for (int a = 3; a < argc; a++) wanted |= strcmp(argv[a], tr->type_name) == 0;
        if (!wanted) continue;
        if (!tr->to_float) { fprintf(stderr, "ggml has no dequantizer for %s\n", tr->type_name); return 1; }
        const int64_t *ne = gguf_get_tensor_ne(ctx, i);
        int64_t n = 1;
        for (int d = 0; d < GGML_MAX_DIMS; d++) n *= ne[d];
        const size_t bytes = gguf_get_tensor_size(ctx, i);
        void *raw = malloc(bytes);
        float *out = malloc((size_t)n * sizeof(float));
        if (!raw || !out) { fprintf(stderr, "out of memory\n"); return 1; }
        if (fseek(in, (long)(base + gguf_get_tensor_offset(ctx, i)), SEEK_SET) != 0 || fread(raw, 1, bytes, in) != bytes) {
            fprintf(stderr, "cannot read tensor %s\n", gguf_get_tensor_name(ctx, i));
            return 1;
        }
        tr->to_float(raw, out, n);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.f32", argv[2], gguf_get_tensor_name(ctx, i));
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(out, sizeof(float), (size_t)n, f) != (size_t)n || fclose(f) != 0) { fprintf(stderr, "cannot write %s\n", path); return 1; }
        free(raw); free(out);
        written++;
    }
    fclose(in);
    gguf_free(ctx);
    printf("%d\n", written);
    return 0;
}
