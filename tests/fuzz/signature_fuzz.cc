// Fuzz target: what peers and clients send the node's crypto code. Bytes 0..31 are a digest and
// 32..96 a recoverable signature (RecoverAddress must return a Status, never crash, and agree with
// VerifySignature); the whole input is also parsed as an address and as hex. Broken promises
// abort, so the fuzzer reports them like crashes.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "atoma/crypto/keys.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace atoma::crypto;
  Hash256 digest{};
  Signature sig{};
  std::copy_n(data, std::min<size_t>(size, 32), digest.begin());
  if (size > 32) std::copy_n(data + 32, std::min<size_t>(size - 32, 65), sig.begin());
  auto recovered = RecoverAddress(digest, sig);
  if (recovered.ok() != VerifySignature(digest, sig, recovered.ok() ? *recovered : Address{})) {
    std::abort();
  }
  if (recovered.ok() && sig[64] != 27 && sig[64] != 28) std::abort();

  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto address = ParseAddress(text);
  // An accepted address prints as its checksummed form, which parses back to the same bytes.
  if (address.ok() && ParseAddress(AddressToString(*address)).value() != *address) std::abort();
  auto hex = ParseHex(text);
  if (hex.ok() && ToHex(*hex).size() != 2 * hex->size()) std::abort();
  (void)PrivateKey::FromHex(text);
  return 0;
}
