#include "atoma/evm/tx.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "atoma/common/status.h"
#include "atoma/crypto/keccak.h"
#include "atoma/evm/rlp.h"

namespace atoma::evm {
namespace {

constexpr uint8_t kEip1559Type = 0x02;

std::vector<std::vector<uint8_t>> UnsignedFields(const Eip1559Tx& tx) {
  std::vector<std::vector<uint8_t>> fields;
  fields.reserve(12);
  fields.push_back(RlpEncodeUint(tx.chain_id));
  fields.push_back(RlpEncodeUint(tx.nonce));
  fields.push_back(RlpEncodeUint(tx.max_priority_fee_per_gas));
  fields.push_back(RlpEncodeUint(tx.max_fee_per_gas));
  fields.push_back(RlpEncodeUint(tx.gas_limit));
  fields.push_back(tx.to ? RlpEncodeBytes(*tx.to) : RlpEncodeBytes({}));
  fields.push_back(RlpEncodeUint(tx.value));
  fields.push_back(RlpEncodeBytes(tx.data));
  fields.push_back(RlpEncodeList({}));  // empty access list
  return fields;
}

std::vector<uint8_t> Typed(const std::vector<uint8_t>& rlp) {
  std::vector<uint8_t> out;
  out.reserve(rlp.size() + 1);
  out.push_back(kEip1559Type);
  out.insert(out.end(), rlp.begin(), rlp.end());
  return out;
}

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("eip-1559 tx: ", what));
}

absl::Status Field(absl::Status status, absl::string_view name) {
  if (status.ok()) return status;
  return Invalid(absl::StrCat(name, ": ", status.message()));
}

}  // namespace

std::vector<uint8_t> EncodeUnsignedTx(const Eip1559Tx& tx) {
  return Typed(RlpEncodeList(UnsignedFields(tx)));
}

crypto::Hash256 TxSigningHash(const Eip1559Tx& tx) {
  return crypto::Keccak256Of(EncodeUnsignedTx(tx));
}

std::vector<uint8_t> SignTx(const Eip1559Tx& tx, const crypto::PrivateKey& key) {
  const crypto::Signature sig = key.Sign(TxSigningHash(tx));
  std::vector<std::vector<uint8_t>> fields = UnsignedFields(tx);
  fields.push_back(RlpEncodeUint(static_cast<uint64_t>(sig[64] - 27)));
  // r and s are scalars: RLP drops their leading zero bytes.
  fields.push_back(
      RlpEncodeUint(Uint256::FromBigEndian(std::span<const uint8_t, 32>(sig.data(), 32))));
  fields.push_back(
      RlpEncodeUint(Uint256::FromBigEndian(std::span<const uint8_t, 32>(sig.data() + 32, 32))));
  return Typed(RlpEncodeList(fields));
}

crypto::Hash256 TxHash(std::span<const uint8_t> raw) { return crypto::Keccak256Of(raw); }

absl::StatusOr<SignedTx> DecodeSignedTx(std::span<const uint8_t> raw) {
  if (raw.empty() || raw[0] != kEip1559Type) {
    return Invalid(raw.empty() ? "empty" : absl::StrCat("type byte ", raw[0], ", expected 2"));
  }
  auto decoded = RlpDecode(raw.subspan(1));
  if (!decoded.ok()) return Invalid(decoded.status().message());
  const RlpItem& list = *decoded;
  if (!list.is_list || list.items.size() != 12) {
    return Invalid("not a list of 12 fields");
  }
  const auto& f = list.items;
  SignedTx out;
  auto u64 = [&](size_t i, absl::string_view name, uint64_t& dst) -> absl::Status {
    auto v = f[i].AsU64();
    if (!v.ok()) return Field(v.status(), name);
    dst = *v;
    return absl::OkStatus();
  };
  auto u256 = [&](size_t i, absl::string_view name, Uint256& dst) -> absl::Status {
    auto v = f[i].AsUint();
    if (!v.ok()) return Field(v.status(), name);
    dst = *v;
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(u64(0, "chain_id", out.tx.chain_id));
  RETURN_IF_ERROR(u64(1, "nonce", out.tx.nonce));
  RETURN_IF_ERROR(u256(2, "max_priority_fee_per_gas", out.tx.max_priority_fee_per_gas));
  RETURN_IF_ERROR(u256(3, "max_fee_per_gas", out.tx.max_fee_per_gas));
  RETURN_IF_ERROR(u64(4, "gas_limit", out.tx.gas_limit));
  if (f[5].is_list) return Invalid("to is a list");
  if (f[5].bytes.size() == 20) {
    crypto::Address to;
    std::copy(f[5].bytes.begin(), f[5].bytes.end(), to.begin());
    out.tx.to = to;
  } else if (!f[5].bytes.empty()) {
    return Invalid(absl::StrCat("to has ", f[5].bytes.size(), " bytes"));
  }
  RETURN_IF_ERROR(u256(6, "value", out.tx.value));
  if (f[7].is_list) return Invalid("data is a list");
  out.tx.data = f[7].bytes;
  if (!f[8].is_list) return Invalid("access list is not a list");
  if (!f[8].items.empty()) return Invalid("non-empty access lists are not supported");
  uint64_t y_parity = 0;
  RETURN_IF_ERROR(u64(9, "y_parity", y_parity));
  if (y_parity > 1) return Invalid(absl::StrCat("y_parity ", y_parity));
  out.y_parity = static_cast<uint8_t>(y_parity);
  RETURN_IF_ERROR(u256(10, "r", out.r));
  RETURN_IF_ERROR(u256(11, "s", out.s));

  crypto::Signature sig;
  const auto r = out.r.ToBigEndian();
  const auto s = out.s.ToBigEndian();
  std::copy(r.begin(), r.end(), sig.begin());
  std::copy(s.begin(), s.end(), sig.begin() + 32);
  sig[64] = static_cast<uint8_t>(27 + out.y_parity);
  auto from = crypto::RecoverAddress(TxSigningHash(out.tx), sig);
  if (!from.ok()) return Invalid(absl::StrCat("signature: ", from.status().message()));
  out.from = *from;
  out.hash = TxHash(raw);
  return out;
}

crypto::Address ContractAddress(const crypto::Address& deployer, uint64_t nonce) {
  const crypto::Hash256 h =
      crypto::Keccak256Of(RlpEncodeList({RlpEncodeBytes(deployer), RlpEncodeUint(nonce)}));
  crypto::Address out;
  std::copy(h.begin() + 12, h.end(), out.begin());
  return out;
}

}  // namespace atoma::evm
