// llama.cpp's view of a synthetic model, as JSON, for the fixtures of scripts/llamacpp-fixtures.sh:
//   llamacpp-logits MODEL.gguf ID [ID …]            → {"logits": [[v0, v1, …], …]}: every position's logits
//   llamacpp-logits MODEL.gguf --tokenize TEXT      → {"tokens": [id, …]}: TEXT tokenized as a prompt
//                                                     (special tokens added as the vocabulary says, none parsed)
#include "llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void quiet(enum ggml_log_level level, const char *text, void *data) { (void)level; (void)text; (void)data; }

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s MODEL.gguf ID [ID ...]\n", argv[0]); return 2; }
    if (!getenv("LLAMACPP_LOGITS_VERBOSE")) llama_log_set(quiet, NULL);  // set it to see why a load fails
    llama_backend_init();
    const int tokenize = strcmp(argv[2], "--tokenize") == 0;
    struct llama_model_params mp = llama_model_default_params();
    mp.vocab_only = tokenize;
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    if (tokenize) {
        if (argc != 4) { fprintf(stderr, "usage: %s MODEL.gguf --tokenize TEXT\n", argv[0]); return 2; }
        const char *text = argv[3];
        llama_token ids[4096];
        const int n = llama_tokenize(llama_model_get_vocab(model), text, (int32_t)strlen(text), ids, 4096, true, false);
        if (n < 0) { fprintf(stderr, "llama_tokenize failed\n"); return 1; }
        printf("{\"tokens\": [");
        for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
        printf("]}\n");
        llama_model_free(model);
        return 0;
    }
    const int n = argc - 2;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 256; cp.n_batch = 256; cp.n_ubatch = 256; cp.n_threads = 1; cp.n_threads_batch = 1;
    // float32 K/V and no flash attention: the cache would otherwise round K and V to f16.
    cp.type_k = GGML_TYPE_F32; cp.type_v = GGML_TYPE_F32; cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "cannot make a context\n"); return 1; }
    struct llama_batch batch = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        batch.token[i] = (llama_token)atoi(argv[2 + i]);
        batch.pos[i] = i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = 1;
    }
    batch.n_tokens = n;
    if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "llama_decode failed\n"); return 1; }
    const int v = llama_vocab_n_tokens(llama_model_get_vocab(model));
    printf("{\"logits\": [");
    for (int i = 0; i < n; i++) {
        const float *l = llama_get_logits_ith(ctx, i);
        printf("%s[", i ? ", " : "");
        for (int k = 0; k < v; k++) printf("%s%.9g", k ? ", " : "", l[k]);
        printf("]");
    }
    printf("]}\n");
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
