#!/usr/bin/env python3
"""Test vectors for the Sampling Consensus pure core, from an implementation independent of the
C++ one (plain python3: hashlib and Python ints, written from DESIGN §4 and docs/protocol.md).

Writes tests/vectors/encoding.json, committee.json and request.json. Regenerate with

    python3 tools/vectors/gen_vectors.py            # from the repository root

and commit the JSON; atoma_consensus_tests checks the C++ against every vector. The output is
deterministic (no randomness but a seeded PRNG), so rerunning changes nothing unless this file
changes.
"""
import hashlib
import json
import os
import random

MAX256 = 2**256 - 1


# ---- canonical encoding -------------------------------------------------------------------------
def u64(v):
    assert 0 <= v < 2**64
    return v.to_bytes(8, "big")


def u32(v):
    assert 0 <= v < 2**32
    return v.to_bytes(4, "big")


def u256(v):
    assert 0 <= v <= MAX256
    return v.to_bytes(32, "big")


def hash32(b):
    assert len(b) == 32
    return bytes(b)


def addr(b):
    assert len(b) == 20
    return bytes(b)


def byte_string(b):
    return u32(len(b)) + bytes(b)


def lst(items, enc):
    return u32(len(items)) + b"".join(enc(x) for x in items)


def H(tag, payload):
    return hashlib.sha256(tag.encode("ascii") + b"\x00" + payload).digest()


ENCODERS = {
    "u64": lambda v: u64(int(v)),
    "u256": lambda v: u256(int(v)),
    "hash": lambda v: hash32(bytes.fromhex(v)),
    "address": lambda v: addr(bytes.fromhex(v)),
    "bytes": lambda v: byte_string(bytes.fromhex(v)),
    "u64_list": lambda v: lst([int(x) for x in v], u64),
    "hash_list": lambda v: lst([bytes.fromhex(x) for x in v], hash32),
    "address_list": lambda v: lst([bytes.fromhex(x) for x in v], addr),
    "bytes_list": lambda v: lst([bytes.fromhex(x) for x in v], byte_string),
}


def rng_bytes(rng, n):
    return bytes(rng.getrandbits(8) for _ in range(n))


def encoding_vectors(rng):
    cases = [
        ("empty", "atoma/test", []),
        ("u64 edges", "atoma/test", [("u64", "0"), ("u64", "1"), ("u64", str(2**64 - 1))]),
        ("u256 edges", "atoma/test", [("u256", "0"), ("u256", "1"), ("u256", str(2**64)),
                                      ("u256", str(MAX256))]),
        ("hash and address", "atoma/x", [("hash", rng_bytes(rng, 32).hex()),
                                         ("address", rng_bytes(rng, 20).hex())]),
        ("bytes", "atoma/bytes", [("bytes", ""), ("bytes", "00"), ("bytes", "68656c6c6f"),
                                  ("bytes", rng_bytes(rng, 300).hex())]),
        ("lists", "atoma/lists", [("u64_list", []), ("u64_list", ["5", str(2**64 - 1), "0"]),
                                  ("hash_list", [rng_bytes(rng, 32).hex() for _ in range(3)]),
                                  ("address_list", [rng_bytes(rng, 20).hex() for _ in range(2)]),
                                  ("bytes_list", ["", "616263", "ff" * 5])]),
        ("tag only differs", "atoma/test2", []),
        ("mixed", "atoma/request", [("hash", "00" * 32), ("u64_list", ["1", "2", "3"]),
                                    ("u256", str(10**18)), ("address", "ff" * 20),
                                    ("bytes_list", ["0a"]), ("u64", "42")]),
    ]
    out = []
    for name, tag, fields in cases:
        payload = b"".join(ENCODERS[t](v) for t, v in fields)
        out.append({"name": name, "tag": tag,
                     "fields": [{"type": t, "value": v} for t, v in fields],
                     "encoded": payload.hex(), "hash": H(tag, payload).hex()})
    return out


# ---- committee selection (DESIGN §4.4) ----------------------------------------------------------
def select_committee(seed, request_id, candidates, n, backups, referees):
    """Returns (committee, backups, referees) as lists of 20-byte addresses, or an error name."""
    if n == 0:
        return "INVALID_ARGUMENT"
    cands = sorted([(a, s) for a, s in candidates if s > 0], key=lambda c: c[0])
    if len({a for a, _ in cands}) != len(cands):
        return "INVALID_ARGUMENT"
    total = sum(s for _, s in cands)
    if total > MAX256:
        return "OUT_OF_RANGE"
    if len(cands) < n:
        return "FAILED_PRECONDITION"
    drawn = []
    k = 0
    while k < n + backups + referees and cands:
        u = int.from_bytes(H("atoma/committee", hash32(seed) + hash32(request_id) + u64(k)), "big")
        u %= total
        running = 0
        for i, (a, s) in enumerate(cands):
            running += s
            if running > u:
                break
        drawn.append(a)
        total -= cands[i][1]
        del cands[i]
        k += 1
    return drawn[:n], drawn[n:n + backups], drawn[n + backups:]


def committee_vectors(rng):
    def addr_n(i):
        return bytes([i]) * 20

    def random_addrs(count):
        return [rng_bytes(rng, 20) for _ in range(count)]

    cases = []

    def add(name, candidates, n, backups, referees, seed=None, request_id=None):
        seed = seed if seed is not None else rng_bytes(rng, 32)
        request_id = request_id if request_id is not None else rng_bytes(rng, 32)
        result = select_committee(seed, request_id, candidates, n, backups, referees)
        case = {"name": name, "epoch_seed": seed.hex(), "request_id": request_id.hex(),
                "candidates": [{"address": a.hex(), "stake": str(s)} for a, s in candidates],
                "n": n, "backups": backups, "referees": referees}
        if isinstance(result, str):
            case["error"] = result
        else:
            case["committee"] = [a.hex() for a in result[0]]
            case["backup_draws"] = [a.hex() for a in result[1]]
            case["referee_draws"] = [a.hex() for a in result[2]]
        cases.append(case)

    add("equal stakes", [(a, 1000) for a in random_addrs(10)], 3, 2, 7)
    for i in range(6):
        add(f"random stakes {i}", [(a, rng.randrange(1, 10**24)) for a in random_addrs(12)],
            rng.randrange(1, 5), rng.randrange(0, 4), rng.randrange(0, 8))
    add("skewed: one whale", [(a, 1) for a in random_addrs(8)] + [(addr_n(0x80), 10**30)], 2, 2, 3)
    add("skewed: powers of two", [(addr_n(i + 1), 2**(8 * i)) for i in range(10)], 4, 3, 3)
    add("ties: identical stakes, addresses differ in last byte",
        [(b"\x11" * 19 + bytes([i]), 7) for i in range(6)], 3, 1, 2)
    add("unsorted input and zero stakes",
        [(addr_n(9), 5), (addr_n(1), 0), (addr_n(3), 8), (addr_n(2), 0), (addr_n(7), 1)], 2, 1, 1)
    add("one candidate", [(addr_n(0x42), 12345)], 1, 2, 2)
    add("one candidate among zero stakes", [(addr_n(1), 0), (addr_n(2), 3), (addr_n(3), 0)], 1, 0, 0)
    add("n equals candidates", [(a, rng.randrange(1, 100)) for a in random_addrs(5)], 5, 1, 1)
    add("n greater than candidates", [(a, 10) for a in random_addrs(3)], 4, 0, 0)
    add("n greater than candidates with stake", [(addr_n(1), 0), (addr_n(2), 5)], 2, 0, 0)
    add("n zero", [(addr_n(1), 5)], 0, 0, 0)
    add("duplicate address", [(addr_n(1), 5), (addr_n(2), 5), (addr_n(1), 6)], 1, 0, 0)
    add("huge: one stake at 2^256 - 1", [(addr_n(5), MAX256)], 1, 0, 0)
    add("huge: total exactly 2^256 - 1",
        [(addr_n(1), 2**255), (addr_n(2), 2**254), (addr_n(3), MAX256 - 2**255 - 2**254 - 1),
         (addr_n(4), 1)], 2, 1, 1)
    add("huge: near 2^256 with small ones",
        [(addr_n(0xf0), MAX256 - 10**6)] + [(a, rng.randrange(1, 10**5)) for a in random_addrs(6)],
        3, 2, 2)
    add("huge: total overflows", [(addr_n(1), MAX256), (addr_n(2), 1)], 1, 0, 0)
    add("many candidates", [(a, rng.randrange(1, 2**64)) for a in random_addrs(64)], 8, 4, 17)
    return cases


# ---- requests, outputs, commitments (DESIGN §4.3, §4.5) -----------------------------------------
def encode_request(r):
    out = hash32(bytes.fromhex(r["model_digest"]))
    out += lst(r["prompt_token_ids"], u64)
    out += u64(r["temperature_micro"]) + u64(r["top_p_micro"]) + u64(r["top_k"])
    out += u64(1 if r["ignore_eos"] else 0)
    out += u64(r["max_tokens"])
    out += lst([bytes.fromhex(s) for s in r["stop_strings"]], byte_string)
    out += lst(r["stop_token_ids"], u64)
    out += u64(r["seed"])
    sec = r["security"]
    mode = {"none": 0, "sampling": 1, "cross_validation": 2}[sec["mode"]]
    out += u64(mode)
    if mode == 1:
        out += u64(sec["n"])
    elif mode == 2:
        out += u64(sec["p_micro"]) + u64(sec["k"]) + hash32(bytes.fromhex(sec["salt_hash"]))
    out += u256(int(r["max_fee"]))
    out += addr(bytes.fromhex(r["client"]))
    out += u64(r["client_nonce"]) + u64(r["epoch"])
    return out


def encode_output(o):
    return lst(o["token_ids"], u64) + u64(o["finish_reason"])


def merkle_root(tokens):
    chunks = [tokens[i:i + 32] for i in range(0, len(tokens), 32)]
    leaves = [hashlib.sha256(b"\x00" + lst(c, u64)).digest() for c in chunks]

    def mth(ls):
        if len(ls) == 0:
            return hashlib.sha256(b"").digest()
        if len(ls) == 1:
            return ls[0]
        k = 1
        while k * 2 < len(ls):
            k *= 2
        return hashlib.sha256(b"\x01" + mth(ls[:k]) + mth(ls[k:])).digest()

    return mth(leaves)


def request_vectors(rng):
    def make_request(**over):
        r = {"model_digest": rng_bytes(rng, 32).hex(),
             "prompt_token_ids": [rng.randrange(0, 2**32) for _ in range(rng.randrange(1, 20))],
             "temperature_micro": 800000, "top_p_micro": 950000, "top_k": 40, "ignore_eos": False,
             "max_tokens": 64, "stop_strings": ["0a0a".encode().hex(), ""],
             "stop_token_ids": [2, 128009], "seed": 7,
             "security": {"mode": "sampling", "n": 3}, "max_fee": str(10**18),
             "client": rng_bytes(rng, 20).hex(), "client_nonce": 1, "epoch": 12}
        r.update(over)
        return r

    requests = [
        ("sampling n=3", make_request()),
        ("security none, greedy, empty lists",
         make_request(security={"mode": "none"}, temperature_micro=0, top_p_micro=1000000, top_k=0,
                      stop_strings=[], stop_token_ids=[], max_fee="0", prompt_token_ids=[1])),
        ("cross validation", make_request(security={"mode": "cross_validation", "p_micro": 100000,
                                                    "k": 2, "salt_hash": rng_bytes(rng, 32).hex()},
                                          ignore_eos=True)),
        ("extremes", make_request(seed=2**64 - 1, client_nonce=2**64 - 1, epoch=2**64 - 1,
                                  max_fee=str(MAX256), max_tokens=2**64 - 1,
                                  security={"mode": "sampling", "n": 64},
                                  prompt_token_ids=[0, 2**32 - 1],
                                  stop_strings=[bytes(range(256)).hex()])),
    ]
    outputs = [
        ("empty output", {"token_ids": [], "finish_reason": 0}),
        ("one token", {"token_ids": [42], "finish_reason": 0}),
        ("exactly one chunk", {"token_ids": list(range(32)), "finish_reason": 1}),
        ("one chunk plus one", {"token_ids": list(range(33)), "finish_reason": 1}),
        ("three chunks", {"token_ids": [rng.randrange(0, 50000) for _ in range(70)],
                          "finish_reason": 0}),
        ("five chunks", {"token_ids": [rng.randrange(0, 2**32) for _ in range(150)],
                         "finish_reason": 1}),
    ]
    cases = []
    for i, (name, r) in enumerate(requests):
        rid = H("atoma/request", encode_request(r))
        oname, o = outputs[i % len(outputs)]
        committee = [rng_bytes(rng, 20) for _ in range(3)]
        proofs = [H("atoma/proof", rid + encode_output(o) + a) for a in committee]
        cases.append({"name": name, "request": r, "request_encoding": encode_request(r).hex(),
                      "request_id": rid.hex(), "output_name": oname, "output": o,
                      "committee": [a.hex() for a in committee],
                      "proofs": [p.hex() for p in proofs],
                      "commitment": H("atoma/commit", b"".join(proofs)).hex(),
                      "merkle_root": merkle_root(o["token_ids"]).hex()})
    merkle = [{"name": name, "token_ids": o["token_ids"], "root": merkle_root(o["token_ids"]).hex()}
              for name, o in outputs]
    attestations = []
    for i in range(3):
        f = {"chain_id": rng.randrange(0, 2**64), "ledger": rng_bytes(rng, 20).hex(),
             "request_id": rng_bytes(rng, 32).hex(), "echelon_id": rng_bytes(rng, 32).hex(),
             "commitment": rng_bytes(rng, 32).hex(), "proof": rng_bytes(rng, 32).hex(),
             "prompt_tokens": rng.randrange(0, 5000), "completion_tokens": rng.randrange(0, 5000),
             "merkle_root": rng_bytes(rng, 32).hex(), "epoch": rng.randrange(0, 2**64)}
        payload = (u64(f["chain_id"]) + addr(bytes.fromhex(f["ledger"])) +
                   b"".join(hash32(bytes.fromhex(f[k]))
                            for k in ("request_id", "echelon_id", "commitment", "proof")) +
                   u64(f["prompt_tokens"]) + u64(f["completion_tokens"]) +
                   hash32(bytes.fromhex(f["merkle_root"])) + u64(f["epoch"]))
        f["digest"] = H("atoma/attestation", payload).hex()
        attestations.append(f)
    return {"requests": cases, "merkle": merkle, "attestation_digests": attestations}


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    out_dir = os.path.join(root, "tests", "vectors")
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(20261124)
    files = {
        "encoding.json": encoding_vectors(rng),
        "committee.json": committee_vectors(rng),
        "request.json": request_vectors(rng),
    }
    for name, data in files.items():
        with open(os.path.join(out_dir, name), "w") as f:
            json.dump({"generator": "tools/vectors/gen_vectors.py", "vectors": data}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
