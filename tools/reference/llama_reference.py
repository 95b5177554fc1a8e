#!/usr/bin/env python3
"""Independent NumPy reference forward pass for Llama-family models (float64).

Reads a Hugging Face model folder itself (config.json, model.safetensors or the shards named by
model.safetensors.index.json; the safetensors header is parsed with json + numpy.frombuffer), runs
the whole token sequence through the model at once (causal attention, no KV cache) and writes the
logits of positions [prompt_len - 1, len(tokens) - 1] as raw little-endian float64, row-major
[rows, vocab]. That is: the logits after the prompt (what prefill returns) and after each further
token (what each decode step returns).

It shares no code with the C++ engine; atoma_model_tests compares against it.

usage: llama_reference.py --model DIR --tokens FILE.json --prompt-len N --out FILE.f64
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[base + begin:base + end]
        dtype = info["dtype"]
        shape = info["shape"]
        if dtype == "F32":
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif dtype == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        elif dtype == "BF16":
            u16 = np.frombuffer(raw, dtype="<u2").astype(np.uint32)
            arr = (u16 << 16).view(np.float32).astype(np.float64)
        elif dtype == "F64":
            arr = np.frombuffer(raw, dtype="<f8").copy()
        else:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dtype}")
        tensors[name] = arr.reshape(shape)
    return tensors


def load_weights(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    weights = {}
    for name in files:
        weights.update(read_safetensors(os.path.join(model_dir, name)))
    return weights


def inv_freqs(cfg, head_dim):
    theta = float(cfg.get("rope_theta", 10000.0))
    inv = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    rs = cfg.get("rope_scaling")
    if rs:
        kind = rs.get("rope_type", rs.get("type"))
        if kind != "llama3":
            raise ValueError(f"rope_scaling {kind} not supported")
        factor = float(rs["factor"])
        low = float(rs.get("low_freq_factor", 1.0))
        high = float(rs.get("high_freq_factor", 4.0))
        old = float(rs.get("original_max_position_embeddings", 8192))
        low_wavelen = old / low
        high_wavelen = old / high
        out = []
        for f in inv:
            wavelen = 2 * math.pi / f
            if wavelen < high_wavelen:
                out.append(f)
            elif wavelen > low_wavelen:
                out.append(f / factor)
            else:
                smooth = (old / wavelen - low) / (high - low)
                out.append((1 - smooth) * f / factor + smooth * f)
        inv = np.array(out, dtype=np.float64)
    return inv


def rms_norm(x, w, eps):
    var = np.mean(x * x, axis=-1, keepdims=True)
    return w * (x / np.sqrt(var + eps))


def rope(x, cos, sin):
#x : [T, heads, hd]; cos / sin : [T, hd / 2].HF rotate_half convention.
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c, s = cos[:, None, :], sin[:, None, :]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)


def forward(cfg, w, tokens):
    hidden = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads", heads)
    head_dim = cfg.get("head_dim") or hidden // heads
    eps = float(cfg.get("rms_norm_eps", 1e-6))
    layers = cfg["num_hidden_layers"]
    tied = cfg.get("tie_word_embeddings", False)
    T = len(tokens)
    x = w["model.embed_tokens.weight"][np.array(tokens)]
    inv = inv_freqs(cfg, head_dim)
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    cos, sin = np.cos(ang), np.sin(ang)
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    groups = heads // kv_heads

    def lin(x_, name, bias=False):
        y = x_ @ w[name + ".weight"].T
        if bias and (name + ".bias") in w:
            y = y + w[name + ".bias"]
        return y

    for i in range(layers):
        p = f"model.layers.{i}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = lin(h, p + "self_attn.q_proj", True).reshape(T, heads, head_dim)
        k = lin(h, p + "self_attn.k_proj", True).reshape(T, kv_heads, head_dim)
        v = lin(h, p + "self_attn.v_proj", True).reshape(T, kv_heads, head_dim)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        out = np.empty((T, heads, head_dim))
        for hh in range(heads):
            kv = hh // groups
            scores = (q[:, hh, :] @ k[:, kv, :].T) / math.sqrt(head_dim) + mask
            scores = scores - scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            out[:, hh, :] = probs @ v[:, kv, :]
        x = x + lin(out.reshape(T, heads * head_dim), p + "self_attn.o_proj")
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = lin(h, p + "mlp.gate_proj")
        u = lin(h, p + "mlp.up_proj")
        x = x + lin((g / (1.0 + np.exp(-g))) * u, p + "mlp.down_proj")
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if tied else w["lm_head.weight"]
    return x @ head.T


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", required=True, help="JSON list of token ids")
    ap.add_argument("--prompt-len", type=int, required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    with open(args.tokens) as f:
        tokens = json.load(f)
    if not 1 <= args.prompt_len <= len(tokens):
        sys.exit("prompt-len must lie in [1, len(tokens)]")
    logits = forward(cfg, load_weights(args.model), tokens)
    np.ascontiguousarray(logits[args.prompt_len - 1:], dtype="<f8").tofile(args.out)


if __name__ == "__main__":
    main()
