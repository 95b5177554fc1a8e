// Fuzz target: raw signed transactions (what the node reads back from a chain or a test).
// DecodeSignedTx must return a Status, never crash; what it accepts is canonical (its fields and
// signature encode back to exactly the input), its hash is keccak of the input, and its sender
// is what the signature recovers over the signing digest. Broken promises abort.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "atoma/crypto/keccak.h"
#include "atoma/evm/rlp.h"
#include "atoma/evm/tx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace atoma::evm;
  const std::span<const uint8_t> input(data, size);
  auto tx = DecodeSignedTx(input);
  if (!tx.ok()) return 0;
  if (tx->y_parity > 1 || tx->hash != atoma::crypto::Keccak256Of(input)) std::abort();

  // Re-encode: the unsigned payload's fields, then y_parity, r, s.
  const std::vector<uint8_t> unsigned_tx = EncodeUnsignedTx(tx->tx);
  auto fields = RlpDecode(std::span(unsigned_tx).subspan(1));
  if (!fields.ok() || !fields->is_list || fields->items.size() != 9) std::abort();
  std::vector<std::vector<uint8_t>> encoded;
  for (const RlpItem& f : fields->items) {
    encoded.push_back(f.is_list ? RlpEncodeList({}) : RlpEncodeBytes(f.bytes));
  }
  encoded.push_back(RlpEncodeUint(static_cast<uint64_t>(tx->y_parity)));
  encoded.push_back(RlpEncodeUint(tx->r));
  encoded.push_back(RlpEncodeUint(tx->s));
  std::vector<uint8_t> again = {0x02};
  const std::vector<uint8_t> body = RlpEncodeList(encoded);
  again.insert(again.end(), body.begin(), body.end());
  if (!std::equal(again.begin(), again.end(), input.begin(), input.end())) std::abort();

  atoma::crypto::Signature sig;
  const auto r = tx->r.ToBigEndian();
  const auto s = tx->s.ToBigEndian();
  std::copy(r.begin(), r.end(), sig.begin());
  std::copy(s.begin(), s.end(), sig.begin() + 32);
  sig[64] = static_cast<uint8_t>(27 + tx->y_parity);
  if (!atoma::crypto::VerifySignature(TxSigningHash(tx->tx), sig, tx->from)) std::abort();
  return 0;
}
