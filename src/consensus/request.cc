#include "atoma/consensus/request.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "atoma/common/status.h"

namespace atoma::consensus {
namespace {

absl::StatusOr<std::vector<uint32_t>> DecodeTokenList(Decoder& in, std::string_view what,
                                                      uint32_t max_count) {
  ASSIGN_OR_RETURN(uint32_t count, in.Count(what, max_count));
  if (in.remaining() / 8 < count) {
    return absl::InvalidArgumentError(absl::StrCat("truncated input reading ", std::string(what)));
  }
  std::vector<uint32_t> ids;
  ids.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    ASSIGN_OR_RETURN(uint64_t id, in.U64(what));
    if (id > UINT32_MAX) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(what), " holds a token id above 2^32 - 1"));
    }
    ids.push_back(static_cast<uint32_t>(id));
  }
  return ids;
}

Hash256 LeafHash(std::span<const uint32_t> chunk) {
  Encoder data;
  data.U64List(chunk);
  crypto::Sha256 sha;
  const uint8_t prefix = 0x00;
  sha.Update(std::span<const uint8_t>(&prefix, 1));
  sha.Update(std::span<const uint8_t>(data.bytes()));
  return sha.Final();
}

Hash256 NodeHash(const Hash256& left, const Hash256& right) {
  crypto::Sha256 sha;
  const uint8_t prefix = 0x01;
  sha.Update(std::span<const uint8_t>(&prefix, 1));
  sha.Update(left);
  sha.Update(right);
  return sha.Final();
}

// MTH over leaves [begin, end) (RFC 6962 §2.1).
Hash256 MerkleTreeHash(std::span<const Hash256> leaves) {
  if (leaves.size() == 1) return leaves[0];
  size_t k = 1;
  while (k * 2 < leaves.size()) k *= 2;
  return NodeHash(MerkleTreeHash(leaves.first(k)), MerkleTreeHash(leaves.subspan(k)));
}

}  // namespace

void EncodeRequest(const ConsensusRequest& r, Encoder& out) {
  out.Hash(r.model_digest)
      .U64List(std::span<const uint32_t>(r.prompt_token_ids))
      .U64(r.temperature_micro)
      .U64(r.top_p_micro)
      .U64(r.top_k)
      .U64(r.ignore_eos ? 1 : 0)
      .U64(r.max_tokens)
      .BytesList(r.stop_strings)
      .U64List(std::span<const uint32_t>(r.stop_token_ids))
      .U64(r.seed)
      .U64(static_cast<uint64_t>(r.security.mode));
  switch (r.security.mode) {
    case SecurityMode::kNone:
      break;
    case SecurityMode::kSampling:
      out.U64(r.security.n);
      break;
    case SecurityMode::kCrossValidation:
      out.U64(r.security.p_micro).U64(r.security.k).Hash(r.security.salt_hash);
      break;
  }
  out.Uint(r.max_fee).Addr(r.client).U64(r.client_nonce).U64(r.epoch);
}

absl::StatusOr<ConsensusRequest> DecodeRequest(Decoder& in) {
  ConsensusRequest r;
  ASSIGN_OR_RETURN(r.model_digest, in.Hash("model digest"));
  ASSIGN_OR_RETURN(r.prompt_token_ids, DecodeTokenList(in, "prompt token ids", kMaxPromptTokens));
  ASSIGN_OR_RETURN(r.temperature_micro, in.U64("temperature"));
  ASSIGN_OR_RETURN(r.top_p_micro, in.U64("top_p"));
  ASSIGN_OR_RETURN(r.top_k, in.U64("top_k"));
  ASSIGN_OR_RETURN(uint64_t ignore_eos, in.U64("ignore_eos"));
  if (ignore_eos > 1) return absl::InvalidArgumentError("ignore_eos must be 0 or 1");
  r.ignore_eos = ignore_eos == 1;
  ASSIGN_OR_RETURN(r.max_tokens, in.U64("max_tokens"));
  ASSIGN_OR_RETURN(uint32_t stops, in.Count("stop strings", kMaxStopStrings));
  for (uint32_t i = 0; i < stops; ++i) {
    ASSIGN_OR_RETURN(std::string s, in.Bytes("stop string", kMaxStopStringBytes));
    r.stop_strings.push_back(std::move(s));
  }
  ASSIGN_OR_RETURN(r.stop_token_ids, DecodeTokenList(in, "stop token ids", kMaxStopTokenIds));
  ASSIGN_OR_RETURN(r.seed, in.U64("seed"));
  ASSIGN_OR_RETURN(uint64_t mode, in.U64("security mode"));
  if (mode == static_cast<uint64_t>(SecurityMode::kNone)) {
    r.security.mode = SecurityMode::kNone;
  } else if (mode == static_cast<uint64_t>(SecurityMode::kSampling)) {
    r.security.mode = SecurityMode::kSampling;
    ASSIGN_OR_RETURN(r.security.n, in.U64("committee size"));
    if (r.security.n == 0 || r.security.n > kMaxCommitteeSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("committee size must be in 1..", kMaxCommitteeSize));
    }
  } else if (mode == static_cast<uint64_t>(SecurityMode::kCrossValidation)) {
    r.security.mode = SecurityMode::kCrossValidation;
    ASSIGN_OR_RETURN(r.security.p_micro, in.U64("check probability"));
    if (r.security.p_micro > 1'000'000) {
      return absl::InvalidArgumentError("check probability above 10^6 millionths");
    }
    ASSIGN_OR_RETURN(r.security.k, in.U64("validator count"));
    if (r.security.k > kMaxCommitteeSize) {
      return absl::InvalidArgumentError("too many cross-validation validators");
    }
    ASSIGN_OR_RETURN(r.security.salt_hash, in.Hash("salt hash"));
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown security mode ", mode));
  }
  ASSIGN_OR_RETURN(r.max_fee, in.Uint("max fee"));
  ASSIGN_OR_RETURN(r.client, in.Addr("client address"));
  ASSIGN_OR_RETURN(r.client_nonce, in.U64("client nonce"));
  ASSIGN_OR_RETURN(r.epoch, in.U64("epoch"));
  return r;
}

Hash256 RequestId(const ConsensusRequest& request) {
  Encoder e;
  EncodeRequest(request, e);
  return TaggedHash("atoma/request", e);
}

Hash256 EchelonId(const Hash256& model_digest, const Hash256& fingerprint) {
  Encoder e;
  e.Hash(model_digest).Hash(fingerprint);
  return TaggedHash("atoma/echelon", e);
}

uint64_t CommitteeSize(const Security& security) {
  return security.mode == SecurityMode::kSampling ? security.n : 1;
}

void EncodeOutput(const ConsensusOutput& output, Encoder& out) {
  out.U64List(std::span<const uint32_t>(output.token_ids))
      .U64(static_cast<uint64_t>(output.finish_reason));
}

Hash256 OutputProof(const Hash256& request_id, const ConsensusOutput& output,
                    const Address& member) {
  Encoder e;
  e.Hash(request_id);
  EncodeOutput(output, e);
  e.Addr(member);
  return TaggedHash("atoma/proof", e);
}

std::vector<Hash256> OutputProofs(const Hash256& request_id, const ConsensusOutput& output,
                                  std::span<const Address> committee) {
  // enc(request_id) ‖ enc(O) is shared by every member; encode it once.
  Encoder prefix;
  prefix.Hash(request_id);
  EncodeOutput(output, prefix);
  std::vector<Hash256> proofs;
  proofs.reserve(committee.size());
  for (const Address& member : committee) {
    Encoder e = prefix;
    e.Addr(member);
    proofs.push_back(TaggedHash("atoma/proof", e));
  }
  return proofs;
}

Hash256 Commitment(std::span<const Hash256> proofs) {
  Encoder e;
  for (const Hash256& p : proofs) e.Hash(p);
  return TaggedHash("atoma/commit", e);
}

Hash256 OutputMerkleRoot(std::span<const uint32_t> token_ids) {
  if (token_ids.empty()) return crypto::Sha256Of("");
  std::vector<Hash256> leaves;
  leaves.reserve((token_ids.size() + kMerkleChunkTokens - 1) / kMerkleChunkTokens);
  for (size_t i = 0; i < token_ids.size(); i += kMerkleChunkTokens) {
    leaves.push_back(
        LeafHash(token_ids.subspan(i, std::min(kMerkleChunkTokens, token_ids.size() - i))));
  }
  return MerkleTreeHash(leaves);
}

}  // namespace atoma::consensus
