#!/usr/bin/env python3
"""Seed corpora for fuzz_attestation and fuzz_certificate (tests/fuzz/corpus/{attestation,
certificate}/): well-formed encodings (docs/protocol.md) with arbitrary signatures, so the fuzzer
starts from inputs that get past the decoders. Regenerate with
    python3 tools/vectors/gen_fuzz_seeds.py
"""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_vectors import addr, encode_request, hash32, lst, u32, u64  # noqa: E402


def attestation_body(rng, chain_id=31337, epoch=12):
    rb = lambda n: bytes(rng.getrandbits(8) for _ in range(n))  # noqa: E731
    sig = rb(64) + bytes([27 + rng.getrandbits(1)])
    return (u64(chain_id) + addr(rb(20)) + hash32(rb(32)) + hash32(rb(32)) + hash32(rb(32)) +
            hash32(rb(32)) + u64(3) + u64(40) + hash32(rb(32)) + u64(epoch) + addr(rb(20)) + sig)


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fuzz",
                        "corpus")
    rng = random.Random(7)
    att_dir = os.path.join(root, "attestation")
    cert_dir = os.path.join(root, "certificate")
    os.makedirs(att_dir, exist_ok=True)
    os.makedirs(cert_dir, exist_ok=True)
    for i in range(3):
        with open(os.path.join(att_dir, f"seed{i}"), "wb") as f:
            f.write(b"\x01" + attestation_body(rng, chain_id=i, epoch=i * 1000))
    request = {"model_digest": "00" * 32, "prompt_token_ids": [1, 15043, 3186],
               "temperature_micro": 0, "top_p_micro": 1000000, "top_k": 0, "ignore_eos": False,
               "max_tokens": 40, "stop_strings": ["0a"], "stop_token_ids": [2], "seed": 0,
               "security": {"mode": "sampling", "n": 3}, "max_fee": "1000", "client": "11" * 20,
               "client_nonce": 0, "epoch": 12}
    # The client's signature (65 raw bytes after the request); fixed bytes, not from `rng`, so
    # the attestation seeds above stay as they were.
    client_sig = b"\x5c" * 64 + b"\x1b"
    for i, n in enumerate([1, 3]):
        request["security"] = {"mode": "sampling", "n": n}
        committee = [bytes([j + 1]) * 20 for j in range(n)]
        cert = (b"\x01" + encode_request(request) + client_sig + lst(committee, addr) +
                hash32(b"\x42" * 32) + u32(n) +
                b"".join(attestation_body(rng) for _ in range(n)))
        with open(os.path.join(cert_dir, f"seed{i}"), "wb") as f:
            f.write(cert)
    request["security"] = {"mode": "cross_validation", "p_micro": 100000, "k": 2,
                           "salt_hash": "ab" * 32}
    cert = (b"\x01" + encode_request(request) + client_sig + lst([b"\x01" * 20], addr) +
            hash32(b"\x42" * 32) + u32(1) + attestation_body(rng))
    with open(os.path.join(cert_dir, "seed_xv"), "wb") as f:
        f.write(cert)


if __name__ == "__main__":
    main()
