#!/usr/bin/env python3
# Independent reference for the sampler golden values in sampler_test.cc (algorithm: sampler.h).
import hashlib, math, struct

def prng(seed, key, step):
    d = hashlib.sha256(b"atoma/sample\x00" + struct.pack(">Q", seed) + bytes(key) + struct.pack(">Q", step)).digest()
    x = struct.unpack(">Q", d[:8])[0]
    return (x >> 11) * 2.0**-53
def sample(logits, T, top_k, top_p, seed, key, step):
    x = [float(v) for v in logits]
    m = max(x); am = x.index(m)
    if T == 0: return am
    w = [math.exp((v - m) / T) for v in x]
    cand = [i for i in range(len(x)) if w[i] > 0]
    order = sorted(cand, key=lambda i: (-w[i], i))
    kept = order
    if top_k > 0 and top_k < len(kept): kept = kept[:top_k]
    if top_p < 1:
        s = 0.0
        for i in sorted(kept): s += w[i]
        thr = top_p * s
        c = 0.0; keep = len(kept)
        for j, i in enumerate(kept):
            c += w[i]
            if c >= thr: keep = j + 1; break
        kept = kept[:keep]
    kept = sorted(kept)
    tot = 0.0
    for i in kept: tot += w[i]
    t = prng(seed, key, step) * tot
    c = 0.0
    for i in kept:
        c += w[i]
        if c > t: return i
    return kept[-1]
zero = [0]*32
k1 = list(range(32))
kff = [255]*32
for args in [(0, zero, 0), (42, k1, 7), (2**64-1, kff, 2**64-1), (1, zero, 0), (0, zero, 1)]:
    print(args[0], args[2], repr(prng(*args)), prng(*args).hex())
V = 1000
logits = [((i * 7919) % 613) / 64.0 - 4.0 for i in range(V)]  # exact in float32
for (T, k, p) in [(1.0, 0, 1.0), (0.7, 40, 1.0), (1.3, 0, 0.9), (0.8, 50, 0.5), (2.0, 0, 1.0)]:
    print(T, k, p, [sample(logits, T, k, p, 1234, k1, s) for s in range(12)])
