#!/usr/bin/python3
"""Independent float64 reference for saed's Llama / Mistral / Qwen2 / Gemma-2 / GPT-NeoX families.

Writes tiny random HuggingFace-layout checkpoints under tests/data/families/<name>/ and, for each,
forward.jsonl (TransformerLens hook values + logits, float64) and, for three models, a random SAELens-6
SAE with its expected encodes.  numpy only (no torch); deterministic (fixed seeds).  The semantics
are written from HF transformers' modeling_{llama,mistral,qwen2,gemma2,gpt_neox}.py and
TransformerLens' HookedTransformer / components; see tests/ref/README.md for every convention used.

    /usr/bin/python3 tests/ref/families.py
"""
import json
import math
import os
import struct
import sys

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "data", "families")


# ----------------------------------------------------------------------------------------------
# safetensors writing (8-byte LE header length, JSON header, raw LE data) and dtype rounding
# ----------------------------------------------------------------------------------------------

def bf16_bits(a32):
    """float32 -> bf16 bit pattern (uint16), round-to-nearest-even on the bit pattern."""
    b = np.ascontiguousarray(a32, dtype=np.float32).view(np.uint32).astype(np.uint64)
    lsb = (b >> 16) & 1
    r = ((b + 0x7FFF + lsb) >> 16).astype(np.uint16)
    return r


def bf16_to_f64(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def quantize(a, dtype):
    """Returns (raw little-endian bytes, the stored values upcast to float64)."""
    a32 = np.asarray(a, dtype=np.float32)
    if dtype == "F32":
        return a32.astype("<f4").tobytes(), a32.astype(np.float64)
    if dtype == "F16":
        h = a32.astype(np.float16)
        return h.astype("<f2").tobytes(), h.astype(np.float64)
    if dtype == "BF16":
        bits = bf16_bits(a32)
        return bits.astype("<u2").tobytes(), bf16_to_f64(bits)
    raise ValueError(dtype)


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw bytes), written in that order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    off = 0
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, raw in tensors:
            f.write(raw)
    return off


def read_safetensors(path):
    """Read-back check of the writer: name -> float64 array."""
    with open(path, "rb") as f:
        buf = f.read()
    n = struct.unpack("<Q", buf[:8])[0]
    assert n % 8 == 0
    hdr = json.loads(buf[8:8 + n].decode())
    data = buf[8 + n:]
    out = {}
    end = 0
    for name, t in hdr.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        raw = data[a:b]
        end = max(end, b)
        if t["dtype"] == "F32":
            v = np.frombuffer(raw, "<f4").astype(np.float64)
        elif t["dtype"] == "F16":
            v = np.frombuffer(raw, "<f2").astype(np.float64)
        elif t["dtype"] == "BF16":
            v = bf16_to_f64(np.frombuffer(raw, "<u2"))
        else:
            raise ValueError(t["dtype"])
        out[name] = v.reshape(t["shape"])
    assert end == len(data)
    return out


# ----------------------------------------------------------------------------------------------
# elementwise functions
# ----------------------------------------------------------------------------------------------

def silu(x):
    return x / (1.0 + np.exp(-x))


_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu_erf(x):  # torch.nn.functional.gelu (HF "gelu")
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def gelu_tanh(x):  # HF "gelu_pytorch_tanh" = torch gelu(approximate="tanh")
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


ACTS = {"silu": silu, "gelu": gelu_erf, "gelu_pytorch_tanh": gelu_tanh}


def rms_normalized(x, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)


def ln_normalized(x, eps):
    c = x - x.mean(axis=-1, keepdims=True)
    return c / np.sqrt(np.mean(c * c, axis=-1, keepdims=True) + eps)


def softcap(x, cap):
    return cap * np.tanh(x / cap)


# ----------------------------------------------------------------------------------------------
# rotary
# ----------------------------------------------------------------------------------------------

def rope_inv_freq(rot_dim, theta, scaling):
    inv = 1.0 / (theta ** (np.arange(0, rot_dim, 2, dtype=np.float64) / rot_dim))
    if scaling is None:
        return inv, None
    assert scaling["rope_type"] == "llama3"
    factor = scaling["factor"]
    lo, hi = scaling["low_freq_factor"], scaling["high_freq_factor"]
    old = scaling["original_max_position_embeddings"]
    lo_wl, hi_wl = old / lo, old / hi
    wl = 2 * math.pi / inv
    out = np.where(wl > lo_wl, inv / factor, inv)
    smooth = (old / wl - lo) / (hi - lo)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = ~(wl < hi_wl) & ~(wl > lo_wl)
    out = np.where(medium, smoothed, out)
    regime = np.where(wl < hi_wl, "high", np.where(wl > lo_wl, "low", "medium"))
    return out, regime


def apply_rope(x, inv_freq, rot_dim):
    """x: (T, nh, hd). rotate_half (GPT-NeoX/Llama layout) on the first rot_dim dims."""
    T = x.shape[0]
    ang = np.arange(T, dtype=np.float64)[:, None] * inv_freq[None, :]  # (T, rot/2)
    emb = np.concatenate([ang, ang], axis=-1)
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
    xr, xp = x[..., :rot_dim], x[..., rot_dim:]
    half = rot_dim // 2
    rot_half = np.concatenate([-xr[..., half:], xr[..., :half]], axis=-1)
    return np.concatenate([xr * cos + rot_half * sin, xp], axis=-1)


# ----------------------------------------------------------------------------------------------
# the forward pass (float64), producing TL hook values
# ----------------------------------------------------------------------------------------------

def lin(x, W, b=None):  # torch nn.Linear: W is (out, in)
    y = x @ W.T
    return y if b is None else y + b


def forward(spec, P, ids):
    """spec: the model description (see MODELS); P: HF tensor name -> float64 array (stored values).
    Returns (hooks dict name -> (T, width) array, logits (T, V), extra dict for processing)."""
    fam = spec["family"]
    c = spec["config"]
    T = len(ids)
    H, KV, hd = spec["n_heads"], spec["n_kv"], spec["head_dim"]
    grp = H // KV
    L = c["num_hidden_layers"]
    hooks = {}
    extra = {"v_bias_full": []}

    if fam == "gpt_neox":
        pre = "gpt_neox."
        E = P[pre + "embed_in.weight"]
        eps = c["layer_norm_eps"]
    else:
        pre = "model."
        E = P[pre + "embed_tokens.weight"]
        eps = c["rms_norm_eps"]

    x = E[ids]
    if fam == "gemma2":
        # HF: hidden * tensor(hidden_size**0.5, dtype=hidden.dtype); TL folds the same factor into
        # W_E, so TL's hook_embed shows the scaled embedding.  d_model is 36: sqrt is exactly 6.
        x = x * float(np.float32(c["hidden_size"] ** 0.5))
    hooks["hook_embed"] = x

    def norm(v, name):
        if fam == "gpt_neox":
            n = ln_normalized(v, eps)
            return n, n * P[name + ".weight"] + P[name + ".bias"]
        n = rms_normalized(v, eps)
        w = P[name + ".weight"]
        return n, n * ((1.0 + w) if fam == "gemma2" else w)

    rot_dim = spec["rot_dim"]
    inv_freq, _ = rope_inv_freq(rot_dim, spec["rope_theta"], spec.get("rope_scaling"))
    scale = spec["attn_scale"]
    act = ACTS[spec["act"]]

    for l in range(L):
        lp = pre + "layers.%d." % l
        hooks["blocks.%d.hook_resid_pre" % l] = x
        n1, h1 = norm(x, lp + "input_layernorm")

        # --- attention ---
        if fam == "gpt_neox":
            qkv = lin(h1, P[lp + "attention.query_key_value.weight"], P[lp + "attention.query_key_value.bias"])
            qkv = qkv.reshape(T, H, 3 * hd)  # HF: view(..., num_heads, 3*head_size); chunk(3, -1)
            q, k, v = qkv[..., :hd], qkv[..., hd:2 * hd], qkv[..., 2 * hd:]
            bqkv = P[lp + "attention.query_key_value.bias"].reshape(H, 3 * hd)
            Wqkv = P[lp + "attention.query_key_value.weight"].reshape(H, 3 * hd, -1)
            bv = bqkv[:, 2 * hd:]
            # TL fold_ln (LN) folds ln1.b @ W_V into b_V; fold_value_biases then moves all of it out.
            bv_full = bv + np.einsum("hdm,m->hd", Wqkv[:, 2 * hd:, :], P[lp + "input_layernorm.bias"])
            Wo, bo = P[lp + "attention.dense.weight"], P[lp + "attention.dense.bias"]
        else:
            ap = lp + "self_attn."
            q = lin(h1, P[ap + "q_proj.weight"], P.get(ap + "q_proj.bias")).reshape(T, H, hd)
            k = lin(h1, P[ap + "k_proj.weight"], P.get(ap + "k_proj.bias")).reshape(T, KV, hd)
            v = lin(h1, P[ap + "v_proj.weight"], P.get(ap + "v_proj.bias")).reshape(T, KV, hd)
            bv = P.get(ap + "v_proj.bias")
            bv = np.zeros((KV, hd)) if bv is None else bv.reshape(KV, hd)
            bv_full = bv  # RMS fold_ln has no bias to fold
            Wo, bo = P[ap + "o_proj.weight"], P.get(ap + "o_proj.bias")
        extra["v_bias_full"].append(bv_full)
        hooks["blocks.%d.attn.hook_q" % l] = q.reshape(T, -1)
        hooks["blocks.%d.attn.hook_k" % l] = k.reshape(T, -1)
        hooks["blocks.%d.attn.hook_v" % l] = v.reshape(T, -1)
        qr = apply_rope(q, inv_freq, rot_dim)
        kr = apply_rope(k, inv_freq, rot_dim)
        win = spec["windows"][l]  # None = full causal
        qi = np.arange(T)[:, None]
        ki = np.arange(T)[None, :]
        visible = ki <= qi
        if win is not None:
            visible &= ki > qi - win
        pat = np.zeros((H, T, T))
        z = np.zeros((T, H, hd))
        for h in range(H):
            g = h // grp  # repeat_interleave / repeat_kv: query head h reads kv head h // (H/KV)
            s = (qr[:, h, :] @ kr[:, g, :].T) * scale
            if spec.get("attn_softcap"):
                s = softcap(s, spec["attn_softcap"])  # before the mask (HF eager + TL)
            s = np.where(visible, s, -np.inf)
            s = s - s.max(axis=-1, keepdims=True)
            p = np.exp(s)
            p /= p.sum(axis=-1, keepdims=True)
            pat[h] = p
            z[:, h, :] = p @ v[:, g, :]
        hooks["blocks.%d.attn.hook_z" % l] = z.reshape(T, -1)
        hooks["blocks.%d.attn.hook_pattern" % l] = pat.transpose(1, 0, 2).reshape(T, H * T)
        attn_out = lin(z.reshape(T, -1), Wo, bo)
        if fam == "gemma2":
            attn_out = norm(attn_out, lp + "post_attention_layernorm")[1]
        hooks["blocks.%d.hook_attn_out" % l] = attn_out

        # --- MLP ---
        def mlp(hin):
            if fam == "gpt_neox":
                hp = lin(hin, P[lp + "mlp.dense_h_to_4h.weight"], P[lp + "mlp.dense_h_to_4h.bias"])
                hpost = act(hp)
                out = lin(hpost, P[lp + "mlp.dense_4h_to_h.weight"], P[lp + "mlp.dense_4h_to_h.bias"])
            else:
                hp = lin(hin, P[lp + "mlp.gate_proj.weight"])
                up = lin(hin, P[lp + "mlp.up_proj.weight"])
                hpost = act(hp) * up
                out = lin(hpost, P[lp + "mlp.down_proj.weight"])
            hooks["blocks.%d.mlp.hook_pre" % l] = hp
            hooks["blocks.%d.mlp.hook_post" % l] = hpost
            return out

        if spec.get("parallel"):
            n2, h2 = norm(x, lp + "post_attention_layernorm")
            mlp_out = mlp(h2)
            hooks["blocks.%d.hook_mlp_out" % l] = mlp_out
            x = x + attn_out + mlp_out
        else:
            x = x + attn_out
            hooks["blocks.%d.hook_resid_mid" % l] = x
            if fam == "gemma2":
                n2, h2 = norm(x, lp + "pre_feedforward_layernorm")
                mlp_out = norm(mlp(h2), lp + "post_feedforward_layernorm")[1]
            else:
                n2, h2 = norm(x, lp + "post_attention_layernorm")
                mlp_out = mlp(h2)
            hooks["blocks.%d.hook_mlp_out" % l] = mlp_out
            x = x + mlp_out
        hooks["blocks.%d.hook_resid_post" % l] = x

    fname = "gpt_neox.final_layer_norm" if fam == "gpt_neox" else "model.norm"
    nf, hf = norm(x, fname)
    hooks["ln_final.hook_normalized"] = nf
    logits = unembed(spec, P, hf)
    return hooks, logits, extra


def unembed(spec, P, hf):
    fam, c = spec["family"], spec["config"]
    if fam == "gpt_neox":
        W = P["embed_out.weight"]
    elif c["tie_word_embeddings"]:
        W = P["model.embed_tokens.weight"]
    else:
        W = P["lm_head.weight"]
    logits = hf @ W.T
    if spec.get("final_softcap"):
        logits = softcap(logits, spec["final_softcap"])
    return logits


def final_norm_apply(spec, P, x):
    c = spec["config"]
    if spec["family"] == "gpt_neox":
        return ln_normalized(x, c["layer_norm_eps"]) * P["gpt_neox.final_layer_norm.weight"] + P["gpt_neox.final_layer_norm.bias"]
    w = P["model.norm.weight"]
    return rms_normalized(x, c["rms_norm_eps"]) * ((1.0 + w) if spec["family"] == "gemma2" else w)


def self_check(spec, P, hooks, logits):
    """Cheap consistency checks of the hook dictionary (not a second implementation)."""
    L = spec["config"]["num_hidden_layers"]
    H, KV, hd = spec["n_heads"], spec["n_kv"], spec["head_dim"]
    T = hooks["hook_embed"].shape[0]
    ok = np.allclose
    assert ok(hooks["blocks.0.hook_resid_pre"], hooks["hook_embed"], rtol=0, atol=1e-12)
    for l in range(L):
        g = "blocks.%d." % l
        if l + 1 < L:
            assert ok(hooks[g + "hook_resid_post"], hooks["blocks.%d.hook_resid_pre" % (l + 1)], rtol=0, atol=1e-12)
        if spec.get("parallel"):
            assert g + "hook_resid_mid" not in hooks
            s = hooks[g + "hook_resid_pre"] + hooks[g + "hook_attn_out"] + hooks[g + "hook_mlp_out"]
        else:
            assert ok(hooks[g + "hook_resid_mid"], hooks[g + "hook_resid_pre"] + hooks[g + "hook_attn_out"], rtol=0, atol=1e-12)
            s = hooks[g + "hook_resid_mid"] + hooks[g + "hook_mlp_out"]
        assert ok(hooks[g + "hook_resid_post"], s, rtol=0, atol=1e-12)
        pat = hooks[g + "attn.hook_pattern"].reshape(T, H, T)
        assert ok(pat.sum(-1), 1.0, rtol=0, atol=1e-12)
        assert np.all(np.triu(pat.transpose(1, 0, 2), 1) == 0)
        win = spec["windows"][l]
        if win is not None:
            for t in range(T):
                assert np.all(pat[t, :, :max(0, t - win + 1)] == 0)
        # z = pattern @ v with the GQA head mapping
        v = hooks[g + "attn.hook_v"].reshape(T, KV, hd)
        z = np.einsum("qhk,khd->qhd", pat, np.repeat(v, H // KV, axis=1))
        assert ok(z.reshape(T, -1), hooks[g + "attn.hook_z"], rtol=0, atol=1e-12)
        assert hooks[g + "attn.hook_q"].shape == (T, H * hd)
        assert hooks[g + "attn.hook_k"].shape == (T, KV * hd)
    fn = final_norm_apply(spec, P, hooks["blocks.%d.hook_resid_post" % (L - 1)])
    assert ok(unembed(spec, P, fn), logits, rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------------------------
# TL default processing (fold_ln, center_writing_weights, center_unembed, fold_value_biases)
# ----------------------------------------------------------------------------------------------

def tl_processed_hooks(spec, hooks, extra):
    """What TL's default from_pretrained processing does to the hook values.
    LayerNorm models: every residual write is centred over d_model; RMSNorm models: TL skips
    center_writing_weights.  fold_value_biases: hook_v loses the (folded) b_V, hook_z loses
    repeat_interleave(b_V) per query head, hook_attn_out is unchanged (b_O absorbs it)."""
    L = spec["config"]["num_hidden_layers"]
    H, KV, hd = spec["n_heads"], spec["n_kv"], spec["head_dim"]
    center = spec["family"] == "gpt_neox"  # normalization_type LN, not final_rms
    cen = (lambda a: a - a.mean(axis=-1, keepdims=True)) if center else (lambda a: a)
    out = {"hook_embed": cen(hooks["hook_embed"])}
    for l in range(L):
        g = "blocks.%d." % l
        for n in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out"):
            if g + n in hooks:
                out[g + n] = cen(hooks[g + n])
        bv = extra["v_bias_full"][l]  # (KV, hd)
        out[g + "attn.hook_v"] = hooks[g + "attn.hook_v"] - bv.reshape(-1)[None, :]
        out[g + "attn.hook_z"] = hooks[g + "attn.hook_z"] - np.repeat(bv, H // KV, axis=0).reshape(-1)[None, :]
    # consistency: resid sums still add up after centring
    for l in range(L):
        g = "blocks.%d." % l
        s = out[g + "hook_resid_pre"] + out[g + "hook_attn_out"] + out[g + "hook_mlp_out"]
        assert np.allclose(s, out[g + "hook_resid_post"], rtol=0, atol=1e-12)
    return out


# ----------------------------------------------------------------------------------------------
# model descriptions
# ----------------------------------------------------------------------------------------------

def llama_like_config(model_type, arch, d, L, H, KV, hd, inter, V, dtype, tied, bos, eos, theta,
                      rope_scaling=None, extra=None):
    c = {
        "architectures": [arch],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "head_dim": hd,
        "hidden_act": "silu",
        "hidden_size": d,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "max_position_embeddings": 128,
        "model_type": model_type,
        "num_attention_heads": H,
        "num_hidden_layers": L,
        "num_key_value_heads": KV,
        "rms_norm_eps": 1e-5,
        "rope_scaling": rope_scaling,
        "rope_theta": theta,
        "tie_word_embeddings": tied,
        "torch_dtype": dtype,
        "use_cache": True,
        "vocab_size": V,
    }
    if model_type == "llama":
        c["mlp_bias"] = False
        c["pretraining_tp"] = 1
    if extra:
        c.update(extra)
    return dict(sorted(c.items()))


MODELS = []

# llama-gqa: Llama, 4 heads / 2 kv heads, untied, F32 single file
MODELS.append(dict(
    name="llama-gqa", family="llama", dtype="F32", seed=101, shards=1,
    config=llama_like_config("llama", "LlamaForCausalLM", 32, 2, 4, 2, 8, 64, 128, "float32", False, 1, 2, 10000.0),
))
# llama3-rope: llama3 rope scaling, tied, BF16, 2 shards, 4 heads / 1 kv head
MODELS.append(dict(
    name="llama3-rope", family="llama", dtype="BF16", seed=102, shards=2,
    config=llama_like_config("llama", "LlamaForCausalLM", 48, 2, 4, 1, 12, 96, 136, "bfloat16", True, 1, 2, 500000.0,
                             rope_scaling={"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                           "original_max_position_embeddings": 64, "rope_type": "llama3"}),
))
# mistral-swa: Mistral, sliding_window 4, GQA 4/2, F16, untied
MODELS.append(dict(
    name="mistral-swa", family="mistral", dtype="F16", seed=103, shards=1,
    config=llama_like_config("mistral", "MistralForCausalLM", 32, 2, 4, 2, 8, 64, 128, "float16", False, 1, 2, 10000.0,
                             extra={"sliding_window": 4}),
))
# qwen2-bias: Qwen2, q/k/v biases, tied, use_sliding_window false, GQA 4/2, F32
MODELS.append(dict(
    name="qwen2-bias", family="qwen2", dtype="F32", seed=104, shards=1,
    config=llama_like_config("qwen2", "Qwen2ForCausalLM", 32, 2, 4, 2, 8, 64, 152, "float32", True, 150, 150, 10000.0,
                             extra={"use_sliding_window": False, "sliding_window": 4, "max_window_layers": 2,
                                    "rms_norm_eps": 1e-6}),
))
# gemma2
_g = {
    "architectures": ["Gemma2ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "attn_logit_softcapping": 5.0,
    "bos_token_id": 2,
    "cache_implementation": "hybrid",
    "eos_token_id": 1,
    "final_logit_softcapping": 8.0,
    "head_dim": 12,
    "hidden_act": "gelu_pytorch_tanh",
    "hidden_activation": "gelu_pytorch_tanh",
    "hidden_size": 36,
    "initializer_range": 0.02,
    "intermediate_size": 72,
    "layer_types": ["sliding_attention", "full_attention"],
    "max_position_embeddings": 128,
    "model_type": "gemma2",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "pad_token_id": 0,
    "query_pre_attn_scalar": 16,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "sliding_window": 4,
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
    "use_cache": True,
    "vocab_size": 144,
}
MODELS.append(dict(name="gemma2", family="gemma2", dtype="F32", seed=105, shards=1, config=_g))


def neox_config(d, L, H, inter, V, dtype, rotary_pct, parallel):
    return {
        "architectures": ["GPTNeoXForCausalLM"],
        "attention_bias": True,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "classifier_dropout": 0.1,
        "eos_token_id": 0,
        "hidden_act": "gelu",
        "hidden_dropout": 0.0,
        "hidden_size": d,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "layer_norm_eps": 1e-5,
        "max_position_embeddings": 128,
        "model_type": "gpt_neox",
        "num_attention_heads": H,
        "num_hidden_layers": L,
        "rope_scaling": None,
        "rotary_emb_base": 10000,
        "rotary_pct": rotary_pct,
        "tie_word_embeddings": False,
        "torch_dtype": dtype,
        "use_cache": True,
        "use_parallel_residual": parallel,
        "vocab_size": V,
    }


MODELS.append(dict(name="pythia", family="gpt_neox", dtype="F32", seed=106, shards=1,
                   config=neox_config(48, 2, 3, 192, 160, "float32", 0.25, True)))
MODELS.append(dict(name="neox-seq", family="gpt_neox", dtype="F16", seed=107, shards=1,
                   config=neox_config(32, 2, 4, 128, 128, "float16", 1.0, False)))

TL_LINES = {"pythia", "neox-seq", "qwen2-bias"}

# per-model weight scales (std multipliers); projection std = gain / sqrt(fan_in)
GAINS = {
    "default": dict(embed=1.0, qk=1.0, v=1.0, o=1.0, mlp_in=1.0, mlp_out=1.0, unembed=1.0, bias=0.2),
    "gemma2": dict(embed=0.4, qk=1.6, v=1.0, o=1.0, mlp_in=1.0, mlp_out=1.0, unembed=1.0, bias=0.0),
    # tied models: the embedding is also the unembedding, so keep it small (logits O(1-5))
    "llama3-rope": dict(embed=0.35, qk=1.0, v=1.0, o=1.0, mlp_in=1.0, mlp_out=1.0, unembed=1.0, bias=0.2),
    "qwen2-bias": dict(embed=0.35, qk=1.0, v=1.0, o=1.0, mlp_in=1.0, mlp_out=1.0, unembed=1.0, bias=0.2),
}


def finish_spec(s):
    c = s["config"]
    fam = s["family"]
    s["n_heads"] = c["num_attention_heads"]
    if fam == "gpt_neox":
        s["n_kv"] = s["n_heads"]
        s["head_dim"] = c["hidden_size"] // s["n_heads"]
        s["rot_dim"] = int(s["head_dim"] * c["rotary_pct"])  # HF rotary_ndims; TL uses round(): same here
        assert s["rot_dim"] % 2 == 0 and s["rot_dim"] == round(s["head_dim"] * c["rotary_pct"])
        s["rope_theta"] = float(c["rotary_emb_base"])
        s["act"] = c["hidden_act"]
        s["parallel"] = c["use_parallel_residual"]
        s["attn_scale"] = s["head_dim"] ** -0.5
        s["windows"] = [None] * c["num_hidden_layers"]
    else:
        s["n_kv"] = c["num_key_value_heads"]
        s["head_dim"] = c["head_dim"]
        s["rot_dim"] = s["head_dim"]
        s["rope_theta"] = float(c["rope_theta"])
        s["rope_scaling"] = c.get("rope_scaling")
        if fam == "gemma2":
            s["act"] = c["hidden_activation"]
            s["attn_scale"] = c["query_pre_attn_scalar"] ** -0.5
            s["attn_softcap"] = c["attn_logit_softcapping"]
            s["final_softcap"] = c["final_logit_softcapping"]
            # HF Gemma2: is_sliding = not bool(layer_idx % 2)  (layer_types: sliding on even layers)
            s["windows"] = [c["sliding_window"] if c["layer_types"][l] == "sliding_attention" else None
                            for l in range(c["num_hidden_layers"])]
        else:
            s["act"] = c["hidden_act"]
            s["attn_scale"] = s["head_dim"] ** -0.5
            sw = None
            if fam == "mistral":
                sw = c.get("sliding_window")
            elif fam == "qwen2" and c.get("use_sliding_window"):
                raise NotImplementedError
            s["windows"] = [sw] * c["num_hidden_layers"]
    return s


def make_weights(s):
    """HF tensor name -> float32 array (before storage rounding), in a fixed order."""
    rng = np.random.default_rng(s["seed"])
    c = s["config"]
    fam = s["family"]
    gn = GAINS.get(s["name"], GAINS["default"])
    d, V, L = c["hidden_size"], c["vocab_size"], c["num_hidden_layers"]
    H, KV, hd = s["n_heads"], s["n_kv"], s["head_dim"]
    I = c["intermediate_size"]
    W = {}

    def proj(out, inp, gain):
        return rng.normal(0.0, gain / math.sqrt(inp), size=(out, inp))

    def normw(n):
        if fam == "gemma2":
            return rng.normal(0.0, 0.1, size=n)  # used as (1 + w)
        return 1.0 + rng.normal(0.0, 0.1, size=n)

    if fam == "gpt_neox":
        W["gpt_neox.embed_in.weight"] = rng.normal(0.0, gn["embed"], size=(V, d))
        for l in range(L):
            p = "gpt_neox.layers.%d." % l
            W[p + "input_layernorm.weight"] = normw(d)
            W[p + "input_layernorm.bias"] = rng.normal(0.0, 0.1, size=d)
            W[p + "post_attention_layernorm.weight"] = normw(d)
            W[p + "post_attention_layernorm.bias"] = rng.normal(0.0, 0.1, size=d)
            W[p + "attention.query_key_value.weight"] = proj(3 * d, d, gn["qk"])
            W[p + "attention.query_key_value.bias"] = rng.normal(0.0, gn["bias"], size=3 * d)
            W[p + "attention.dense.weight"] = proj(d, d, gn["o"])
            W[p + "attention.dense.bias"] = rng.normal(0.0, 0.1, size=d)
            W[p + "mlp.dense_h_to_4h.weight"] = proj(I, d, gn["mlp_in"])
            W[p + "mlp.dense_h_to_4h.bias"] = rng.normal(0.0, 0.1, size=I)
            W[p + "mlp.dense_4h_to_h.weight"] = proj(d, I, gn["mlp_out"])
            W[p + "mlp.dense_4h_to_h.bias"] = rng.normal(0.0, 0.1, size=d)
        W["gpt_neox.final_layer_norm.weight"] = normw(d)
        W["gpt_neox.final_layer_norm.bias"] = rng.normal(0.0, 0.1, size=d)
        W["embed_out.weight"] = proj(V, d, gn["unembed"] * 2.0)
        return W

    W["model.embed_tokens.weight"] = rng.normal(0.0, gn["embed"], size=(V, d))
    for l in range(L):
        p = "model.layers.%d." % l
        W[p + "input_layernorm.weight"] = normw(d)
        W[p + "self_attn.q_proj.weight"] = proj(H * hd, d, gn["qk"])
        W[p + "self_attn.k_proj.weight"] = proj(KV * hd, d, gn["qk"])
        W[p + "self_attn.v_proj.weight"] = proj(KV * hd, d, gn["v"])
        if fam == "qwen2":
            W[p + "self_attn.q_proj.bias"] = rng.normal(0.0, gn["bias"], size=H * hd)
            W[p + "self_attn.k_proj.bias"] = rng.normal(0.0, gn["bias"], size=KV * hd)
            W[p + "self_attn.v_proj.bias"] = rng.normal(0.0, gn["bias"], size=KV * hd)
        W[p + "self_attn.o_proj.weight"] = proj(d, H * hd, gn["o"])
        W[p + "post_attention_layernorm.weight"] = normw(d)
        if fam == "gemma2":
            W[p + "pre_feedforward_layernorm.weight"] = normw(d)
            W[p + "post_feedforward_layernorm.weight"] = normw(d)
        W[p + "mlp.gate_proj.weight"] = proj(I, d, gn["mlp_in"])
        W[p + "mlp.up_proj.weight"] = proj(I, d, gn["mlp_in"])
        W[p + "mlp.down_proj.weight"] = proj(d, I, gn["mlp_out"])
    W["model.norm.weight"] = normw(d)
    if not c["tie_word_embeddings"]:
        W["lm_head.weight"] = proj(V, d, gn["unembed"] * 2.0)
    return W


# ----------------------------------------------------------------------------------------------
# output
# ----------------------------------------------------------------------------------------------

def r8(a):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0:
        return float("%.8g" % float(a))
    return [r8(x) for x in a]


def write_model(s):
    d = os.path.join(OUT, s["name"])
    os.makedirs(d, exist_ok=True)
    W = make_weights(s)
    P = {}
    tensors = []
    for name, a in W.items():
        raw, v64 = quantize(a, s["dtype"])
        P[name] = v64
        tensors.append((name, s["dtype"], a.shape, raw))
    meta = {"format": "pt"}
    if s["shards"] == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), tensors, meta)
    else:
        # shard 1: embeddings + layer 0; shard 2: everything else
        n = s["shards"]
        files = ["model-%05d-of-%05d.safetensors" % (i + 1, n) for i in range(n)]
        first = [t for t in tensors if t[0].startswith("model.embed_tokens") or t[0].startswith("model.layers.0.")]
        rest = [t for t in tensors if t not in first]
        assert n == 2 and first and rest
        total = 0
        wmap = {}
        for fname, part in zip(files, (first, rest)):
            total += write_safetensors(os.path.join(d, fname), part, meta)
            for t in part:
                wmap[t[0]] = fname
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(wmap.items()))}, f, indent=2)
            f.write("\n")
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(s["config"], f, indent=2)
        f.write("\n")
    # read back what was written: every tensor once, with the values the reference computes from
    back = {}
    for fn in sorted(os.listdir(d)):
        if fn.endswith(".safetensors"):
            part = read_safetensors(os.path.join(d, fn))
            assert not set(part) & set(back)
            back.update(part)
    assert set(back) == set(P)
    for k in P:
        assert np.array_equal(back[k], P[k]), k
    return P


def make_sequences(s):
    rng = np.random.default_rng(s["seed"] + 1000)
    c = s["config"]
    seqs = []
    for name, T in (("seq9", 9), ("seq12", 12)):
        ids = [int(c["bos_token_id"])] + [int(x) for x in rng.integers(0, c["vocab_size"], size=T - 1)]
        seqs.append((name, ids))
    return seqs


def stats(s, hooks, logits):
    """Numbers that show the scales are sane (printed, not stored)."""
    L = s["config"]["num_hidden_layers"]
    T = logits.shape[0]
    H = s["n_heads"]
    pm = max(hooks["blocks.%d.attn.hook_pattern" % l].reshape(T, H, T)[1:].max() for l in range(L))
    rs = np.sqrt(np.mean(hooks["blocks.%d.hook_resid_post" % (L - 1)] ** 2))
    return "max pattern(t>0) %.3f  rms resid_post[-1] %.3f  logits std %.3f max|%.3f|" % (
        pm, rs, logits.std(), np.abs(logits).max())


def sae_spec():
    return [
        dict(model="llama-gqa", arch="jumprelu", hook="blocks.1.hook_resid_post", seed=201, b_dec_in=False),
        dict(model="gemma2", arch="standard", hook="blocks.0.hook_mlp_out", seed=202, b_dec_in=True),
        dict(model="pythia", arch="topk", hook="blocks.1.attn.hook_z", seed=203, b_dec_in=True, k=6),
    ]


def sae_encode(arch, x, Wenc, benc, bdec, thr, apply_b_dec, k):
    sin = x - bdec if apply_b_dec else x
    pre = sin @ Wenc + benc
    if arch == "standard":
        acts = np.maximum(pre, 0.0)
    elif arch == "jumprelu":
        acts = np.maximum(pre, 0.0) * (pre > thr)
    elif arch == "topk":
        acts = np.zeros_like(pre)
        for t in range(pre.shape[0]):
            idx = np.argsort(-pre[t], kind="stable")[:k]
            acts[t, idx] = np.maximum(pre[t, idx], 0.0)  # topk over pre-activations, then ReLU
    else:
        raise ValueError(arch)
    return pre, acts


def write_sae(sp, spec, forwards):
    """forwards: list of (case name, ids, hooks)."""
    d_sae = 96
    x_all = np.concatenate([h[sp["hook"]] for _, _, h in forwards], axis=0)
    d_in = x_all.shape[1]
    rng = np.random.default_rng(sp["seed"])
    Wdec = rng.normal(0.0, 1.0, size=(d_sae, d_in))
    Wdec /= np.linalg.norm(Wdec, axis=1, keepdims=True)
    Wenc = Wdec.T.copy() + rng.normal(0.0, 0.05, size=(d_in, d_sae))
    xs = x_all.std()
    bdec = rng.normal(0.0, 0.1 * xs, size=d_in)
    sin = x_all - bdec if sp["b_dec_in"] else x_all
    raw = sin @ Wenc
    thr = np.zeros(d_sae)
    if sp["arch"] == "standard":
        # per-feature bias putting each feature's firing rate near 12/96
        benc = -np.quantile(raw, 1 - 12.0 / d_sae, axis=0) + rng.normal(0, 0.02 * xs, size=d_sae)
    elif sp["arch"] == "jumprelu":
        benc = rng.normal(0.0, 0.05 * xs, size=d_sae)
        pre = raw + benc
        thr = np.maximum(np.quantile(pre, 1 - 10.0 / d_sae, axis=0), 0.01 * xs)
        thr = thr * (1 + rng.uniform(-0.05, 0.05, size=d_sae))
    else:
        benc = rng.normal(0.0, 0.1 * xs, size=d_sae)
    # store float32 and compute from the stored values
    Wenc, benc, Wdec, bdec, thr = (a.astype(np.float32).astype(np.float64) for a in (Wenc, benc, Wdec, bdec, thr))

    name = "sae-%s" % sp["arch"]
    d = os.path.join(OUT, sp["model"], name)
    os.makedirs(d, exist_ok=True)
    tensors = [("W_enc", Wenc), ("b_enc", benc), ("W_dec", Wdec), ("b_dec", bdec)]
    if sp["arch"] == "jumprelu":
        tensors.append(("threshold", thr))
    write_safetensors(os.path.join(d, "sae_weights.safetensors"),
                      [(n, "F32", a.shape, a.astype("<f4").tobytes()) for n, a in tensors])
    c = spec["config"]
    cfg = {
        "d_in": int(d_in),
        "d_sae": d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": sp["b_dec_in"],
        "normalize_activations": "none",
        "reshape_activations": "hook_z" if sp["hook"].endswith("hook_z") else "none",
        "metadata": {
            "sae_lens_version": "6.18.0",
            "sae_lens_training_version": "6.18.0",
            "model_name": sp["model"],
            "hook_name": sp["hook"],
            "hook_head_index": None,
            "prepend_bos": True,
            "context_size": 64,
            "dataset_path": "none (random weights)",
            "model_from_pretrained_kwargs": {},
        },
    }
    if sp["arch"] == "topk":
        cfg["k"] = sp["k"]
        cfg["rescale_acts_by_decoder_norm"] = False
    cfg["architecture"] = sp["arch"]
    with open(os.path.join(d, "cfg.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")

    lines = []
    l0s = []
    for case, ids, hooks in forwards:
        x = hooks[sp["hook"]]
        pre, acts = sae_encode(sp["arch"], x, Wenc, benc, bdec, thr, sp["b_dec_in"], sp.get("k"))
        out = acts @ Wdec + bdec
        per_tok = []
        for t in range(x.shape[0]):
            nz = [(int(i), float(acts[t, i])) for i in np.nonzero(acts[t] > 0)[0]]
            nz.sort(key=lambda p: (-p[1], p[0]))
            per_tok.append([[i, r8(v)] for i, v in nz])
        l0 = [len(p) for p in per_tok]
        l0s += l0
        if sp["arch"] == "standard":
            chk = {"min_abs_hidden_pre": float("%.3g" % np.abs(pre).min())}
        elif sp["arch"] == "jumprelu":
            chk = {"min_abs_hidden_pre_minus_threshold": float("%.3g" % np.abs(pre - thr).min())}
        else:
            srt = -np.sort(-pre, axis=1)
            chk = {"min_gap_kth_vs_k+1th": float("%.3g" % (srt[:, sp["k"] - 1] - srt[:, sp["k"]]).min())}
        lines.append({"model": sp["model"], "case": case, "ids": ids, "sae": name, "architecture": sp["arch"],
                      "hook_name": sp["hook"], "input_mode": "raw", "acts": per_tok, "l0": l0,
                      "sae_out": [r8(r) for r in out], "check": chk})
    with open(os.path.join(d, "sae_cases.jsonl"), "w") as f:
        for ln in lines:
            f.write(json.dumps(ln, separators=(",", ":")) + "\n")
    print("  %s/%s: d_in %d, L0 per token min %d mean %.1f max %d, %s" % (
        sp["model"], name, d_in, min(l0s), np.mean(l0s), max(l0s), lines[0]["check"]))


def unit_checks():
    # bf16 round-to-nearest-even on the bit pattern
    v = np.array([1.0, 1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, -2.5, 1 + 2.0 ** -8 + 2.0 ** -20], dtype=np.float32)
    assert bf16_bits(v).tolist() == [0x3F80, 0x3F80, 0x3F82, 0xC020, 0x3F81], [hex(x) for x in bf16_bits(v)]
    # rotary: <R(p)q, R(p+d)k> depends only on d (checks the rotate_half pairing and the angles)
    rng = np.random.default_rng(0)
    for rot, hd in ((8, 8), (4, 16)):
        inv, _ = rope_inv_freq(rot, 10000.0, None)
        q = np.repeat(rng.normal(size=(1, 1, hd)), 10, axis=0)
        k = np.repeat(rng.normal(size=(1, 1, hd)), 10, axis=0)
        qr, kr = apply_rope(q, inv, rot)[:, 0], apply_rope(k, inv, rot)[:, 0]
        assert np.allclose(qr[2] @ kr[5], qr[4] @ kr[7]) and np.allclose(qr[0] @ kr[3], qr[6] @ kr[9])
        assert np.allclose(qr[:, rot:], q[:, 0, rot:])  # pass-through dims untouched
        assert np.allclose(qr[0], q[0, 0])  # position 0 is the identity


def main():
    unit_checks()
    os.makedirs(OUT, exist_ok=True)
    all_fw = {}
    specs = {}
    for s in MODELS:
        s = finish_spec(s)
        specs[s["name"]] = s
        P = write_model(s)
        if s.get("rope_scaling"):
            _, regime = rope_inv_freq(s["rot_dim"], s["rope_theta"], s["rope_scaling"])
            assert {"high", "medium", "low"} <= set(regime.tolist()), regime
            print("  %s llama3 rope regimes per frequency: %s" % (s["name"], " ".join(regime.tolist())))
        lines = []
        fws = []
        for case, ids in make_sequences(s):
            hooks, logits, extra = forward(s, P, ids)
            self_check(s, P, hooks, logits)
            fws.append((case, ids, hooks))
            print("  %s %s: %s" % (s["name"], case, stats(s, hooks, logits)))
            lines.append({"name": case, "ids": ids, "processing": "none",
                          "hooks": {k: r8(v) for k, v in hooks.items()}, "logits": r8(logits)})
            if s["name"] in TL_LINES:
                th = tl_processed_hooks(s, hooks, extra)
                lines.append({"name": case, "ids": ids, "processing": "tl",
                              "hooks": {k: r8(v) for k, v in th.items()}})
        with open(os.path.join(OUT, s["name"], "forward.jsonl"), "w") as f:
            for ln in lines:
                f.write(json.dumps(ln, separators=(",", ":")) + "\n")
        all_fw[s["name"]] = fws
    for sp in sae_spec():
        write_sae(sp, specs[sp["model"]], all_fw[sp["model"]])


if __name__ == "__main__":
    sys.exit(main())
