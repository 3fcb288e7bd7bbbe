/* hooks.c: see hooks.h. */
#include "engine/hooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const block_names[HOOK_N_KINDS] = {
    [HOOK_RESID_PRE] = "hook_resid_pre", [HOOK_RESID_MID] = "hook_resid_mid", [HOOK_RESID_POST] = "hook_resid_post",
    [HOOK_ATTN_OUT] = "hook_attn_out",   [HOOK_MLP_OUT] = "hook_mlp_out",     [HOOK_Q] = "attn.hook_q",
    [HOOK_K] = "attn.hook_k",            [HOOK_V] = "attn.hook_v",            [HOOK_Z] = "attn.hook_z",
    [HOOK_PATTERN] = "attn.hook_pattern", [HOOK_MLP_PRE] = "mlp.hook_pre",    [HOOK_MLP_POST] = "mlp.hook_post",
};

int hook_is_residual_write(hook_kind k)
{
    return k == HOOK_EMBED || k == HOOK_POS_EMBED || k == HOOK_RESID_PRE || k == HOOK_RESID_MID ||
           k == HOOK_RESID_POST || k == HOOK_ATTN_OUT || k == HOOK_MLP_OUT;
}

int hook_parse(const char *name, int n_layer, hook_point *hp, char *err, size_t errlen)
{
    if (!strcmp(name, "hook_embed")) *hp = (hook_point){HOOK_EMBED, -1};
    else if (!strcmp(name, "hook_pos_embed")) *hp = (hook_point){HOOK_POS_EMBED, -1};
    else if (!strcmp(name, "ln_final.hook_normalized")) *hp = (hook_point){HOOK_LN_FINAL, -1};
    else if (!strncmp(name, "blocks.", 7)) {
        char *end;
        long l = strtol(name + 7, &end, 10);
        if (end == name + 7 || *end != '.' || name[7] == '-' || name[7] == '+') {
            snprintf(err, errlen, "hook '%s': expected blocks.<layer>.<hook>", name);
            return -1;
        }
        int kind = -1;
        for (int k = 0; k < HOOK_N_KINDS; k++)
            if (block_names[k] && !strcmp(end + 1, block_names[k])) kind = k;
        if (kind < 0) {
            snprintf(err, errlen, "hook '%s': unknown hook '%s' (known: hook_resid_pre, hook_resid_mid, hook_resid_post, "
                                  "hook_attn_out, hook_mlp_out, attn.hook_q/k/v/z/pattern, mlp.hook_pre/post)", name, end + 1);
            return -1;
        }
        if (l < 0 || l >= n_layer) {
            snprintf(err, errlen, "hook '%s': layer %ld out of range (the model has layers 0-%d)", name, l, n_layer - 1);
            return -1;
        }
        *hp = (hook_point){(hook_kind)kind, (int)l};
    } else {
        snprintf(err, errlen, "hook '%s': unknown hook name (TransformerLens names such as blocks.0.hook_resid_pre)", name);
        return -1;
    }
    return 0;
}

void hook_format(hook_point hp, char *buf, size_t n)
{
    if (hp.kind == HOOK_EMBED) snprintf(buf, n, "hook_embed");
    else if (hp.kind == HOOK_POS_EMBED) snprintf(buf, n, "hook_pos_embed");
    else if (hp.kind == HOOK_LN_FINAL) snprintf(buf, n, "ln_final.hook_normalized");
    else snprintf(buf, n, "blocks.%d.%s", hp.layer, block_names[hp.kind]);
}
