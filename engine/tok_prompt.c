/* tok_prompt.c: see tok_prompt.h. */
#include "engine/tok_prompt.h"

int tok_prompt_bos(const tokenizer *t)
{
    int b = tok_bos_id(t);
    return b >= 0 ? b : tok_eos_id(t);
}

int tok_mask_ids(const tokenizer *t, int32_t out[3])
{
    const int cand[3] = {tok_prompt_bos(t), tok_eos_id(t), tok_pad_id(t)};
    int n = 0;
    for (int i = 0; i < 3; i++) {
        int dup = cand[i] < 0;
        for (int j = 0; j < n && !dup; j++) dup = out[j] == cand[i];
        if (!dup) out[n++] = cand[i];
    }
    return n;
}

int tok_special_id(const tokenizer *t, int32_t id)
{
    int32_t m[3];
    int n = tok_mask_ids(t, m);
    for (int i = 0; i < n; i++)
        if (m[i] == id) return 1;
    return tok_is_special(t, id);
}
