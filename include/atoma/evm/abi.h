// The Solidity contract ABI (v2 coder, https://docs.soliditylang.org/en/latest/abi-spec.html):
// types parsed from canonical type strings, values, encoding and strict decoding, function
// selectors, event topics, and revert reasons.
//
// Supported types: uintN and intN (N = 8..256, multiple of 8; "uint"/"int" are NOT accepted,
// write uint256: selectors hash canonical names), address, bool, bytesN (N = 1..32), bytes,
// string, T[] (dynamic array), T[k] (k >= 1), and tuples (T1,...,Tn) (n >= 1), nested freely.
// Empty tuples and zero-length fixed arrays are rejected: they take no space in the encoding, so a
// hostile length could make the decoder allocate without bound.
//
// Values: an AbiValue holds one of Uint256 (uintN, and intN as a 256-bit two's complement word),
// Address, bool, bytes (bytesN and bytes), string, or a list (T[], T[k] and tuples). AbiDecode
// produces exactly the value kinds its types call for, so the accessors of a decoded value
// may be used without checking kind() first when the types are known.
//
// Error contract:
//   AbiType::Parse / ParseSignature: INVALID_ARGUMENT for a malformed or unsupported type string.
//   AbiEncode / EncodeCall: INVALID_ARGUMENT when a value does not match its type (wrong kind, a
//     number too wide for uintN/intN, bytesN with other than N bytes, a T[k] with other than k
//     elements, a tuple of the wrong arity, a value count that does not match the type count).
//   AbiDecode: INVALID_ARGUMENT for anything that is not a valid encoding: a head or an offset
//     or a length that points outside its enclosing block, dirty high bits (uintN/intN that do
//     not fit, bool not 0/1, address with non-zero upper bytes, bytesN with non-zero padding),
//     and offsets that make several values share the same data so that the decoded size would
//     exceed the input size (canonical encoders never share). Not checked: UTF-8 validity of
//     strings (returned as bytes), the zero padding after bytes/string data, and the order of
//     the tails. Trailing bytes after the encoding are ignored, like Solidity's abi.decode does.
//     It never aborts and allocates O(input size) at most.
//
// Thread-safety: values and plain functions; safe from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "atoma/common/uint256.h"
#include "atoma/crypto/keys.h"
#include "atoma/crypto/sha256.h"

namespace atoma::evm {

class AbiType {
 public:
  enum class Kind {
    kUint,        // uintN; bits()
    kInt,         // intN; bits()
    kAddress,     //
    kBool,        //
    kFixedBytes,  // bytesN; size() = N
    kBytes,       // bytes
    kString,      // string
    kArray,       // T[]; element()
    kFixedArray,  // T[k]; element(), size() = k
    kTuple,       // (T1,...,Tn); components()
  };

  // Parses one canonical type string, e.g. "uint256", "(address,bytes32[])[2]". No whitespace.
  static absl::StatusOr<AbiType> Parse(std::string_view text);

  static AbiType Uint(int bits = 256);  // precondition: 8 <= bits <= 256, bits % 8 == 0
  static AbiType Int(int bits = 256);   // same precondition
  static AbiType Address();
  static AbiType Bool();
  static AbiType FixedBytes(size_t n);  // precondition: 1 <= n <= 32
  static AbiType Bytes();
  static AbiType String();
  static AbiType Array(AbiType element);
  static AbiType FixedArray(AbiType element, size_t k);   // precondition: k >= 1
  static AbiType Tuple(std::vector<AbiType> components);  // precondition: not empty

  Kind kind() const { return kind_; }
  // uintN / intN: N.
  int bits() const { return bits_; }
  // bytesN: N; T[k]: k; 0 otherwise.
  size_t size() const { return size_; }
  // T[] and T[k]: T. Precondition: kind() is kArray or kFixedArray.
  const AbiType& element() const { return children_.front(); }
  // Tuple components (empty for other kinds).
  const std::vector<AbiType>& components() const { return children_; }

  // True for bytes, string, T[], and T[k] / tuples that contain a dynamic type.
  bool IsDynamic() const;
  // Bytes the type takes in its enclosing head: 32 for a dynamic type (the offset), the full
  // static size otherwise (e.g. 96 for uint256[3]).
  size_t HeadSize() const;
  // The canonical string (what Parse accepts and selectors hash).
  std::string ToString() const;

  friend bool operator==(const AbiType&, const AbiType&) = default;

 private:
  AbiType(Kind kind, int bits, size_t size, std::vector<AbiType> children)
      : kind_(kind), bits_(bits), size_(size), children_(std::move(children)) {}

  Kind kind_ = Kind::kUint;
  int bits_ = 256;
  size_t size_ = 0;
  std::vector<AbiType> children_;
};

// Parses a comma-separated list of types without the outer parentheses ("uint256,bytes"; "" is
// the empty list).
absl::StatusOr<std::vector<AbiType>> ParseTypeList(std::string_view text);

// A function or event signature "name(T1,...,Tn)", split into its name and parameter types.
struct AbiSignature {
  std::string name;
  std::vector<AbiType> inputs;
};
// INVALID_ARGUMENT unless `signature` is an identifier then a parenthesized type list, no spaces.
absl::StatusOr<AbiSignature> ParseSignature(std::string_view signature);

class AbiValue {
 public:
  enum class Kind { kUint, kAddress, kBool, kBytes, kString, kList };

  AbiValue() = default;  // Uint 0
  static AbiValue Uint(const Uint256& value);
  // A signed value as its 256-bit two's complement word (for intN).
  static AbiValue Int(int64_t value);
  static AbiValue Address(const crypto::Address& address);
  static AbiValue Bool(bool value);
  // bytes and bytesN both hold bytes; for bytesN the count must be N when encoding.
  static AbiValue Bytes(std::vector<uint8_t> bytes);
  static AbiValue Bytes(std::span<const uint8_t> bytes);
  static AbiValue Bytes32(const crypto::Hash256& word);
  static AbiValue String(std::string text);
  // T[], T[k] and tuples all hold a list of values.
  static AbiValue List(std::vector<AbiValue> items);
  static AbiValue Tuple(std::vector<AbiValue> items) { return List(std::move(items)); }
  static AbiValue Array(std::vector<AbiValue> items) { return List(std::move(items)); }

  Kind kind() const { return static_cast<Kind>(value_.index()); }

  // Accessors. Precondition: kind() is the accessor's kind (a decoded value's kinds follow its
  // types). A mismatch throws std::bad_variant_access, which this project treats as a bug.
  const Uint256& uint() const { return std::get<Uint256>(value_); }
  const crypto::Address& address() const { return std::get<crypto::Address>(value_); }
  bool boolean() const { return std::get<bool>(value_); }
  const std::vector<uint8_t>& bytes() const { return std::get<std::vector<uint8_t>>(value_); }
  const std::string& string() const { return std::get<std::string>(value_); }
  const std::vector<AbiValue>& list() const { return std::get<std::vector<AbiValue>>(value_); }
  // Shorthands with checks: OUT_OF_RANGE when the value needs more than 64 bits / INVALID_ARGUMENT
  // when it is not a uint; INVALID_ARGUMENT unless bytes of exactly 32.
  absl::StatusOr<uint64_t> AsU64() const;
  absl::StatusOr<int64_t> AsI64() const;  // reads the word as two's complement
  absl::StatusOr<crypto::Hash256> AsBytes32() const;
  // The element at `i` of a list; precondition: kind() == kList and i < list().size().
  const AbiValue& operator[](size_t i) const { return list()[i]; }

  friend bool operator==(const AbiValue&, const AbiValue&) = default;

 private:
  // Alternative order == Kind order.
  std::variant<Uint256, crypto::Address, bool, std::vector<uint8_t>, std::string,
               std::vector<AbiValue>>
      value_;
};

// Encodes `values` as the tuple (types...) — the calldata after the selector, or a function's
// return data. See the file comment for errors.
absl::StatusOr<std::vector<uint8_t>> AbiEncode(const std::vector<AbiType>& types,
                                               const std::vector<AbiValue>& values);
// Decodes the tuple (types...) from `data` (return data, log data, or calldata after the
// selector). Strict; see the file comment.
absl::StatusOr<std::vector<AbiValue>> AbiDecode(const std::vector<AbiType>& types,
                                                std::span<const uint8_t> data);

// First 4 bytes of Keccak-256 of the signature as given (canonical: "transfer(address,uint256)").
std::array<uint8_t, 4> Selector(std::string_view signature);
// Keccak-256 of an event signature ("Transfer(address,address,uint256)"): a log's topic 0.
crypto::Hash256 EventTopic(std::string_view signature);
// Selector(signature) ‖ AbiEncode(types parsed from the signature, args).
absl::StatusOr<std::vector<uint8_t>> EncodeCall(std::string_view signature,
                                                const std::vector<AbiValue>& args);

// The message of an `Error(string)` revert (selector 0x08c379a0); nullopt for anything else,
// including a malformed Error(string) payload.
std::optional<std::string> RevertErrorMessage(std::span<const uint8_t> revert_data);
// A readable reason for any revert data, for messages and logs:
//   Error(string)       -> the message itself
//   Panic(uint256)      -> "panic 0x11 (arithmetic overflow)" (known codes named)
//   empty               -> "no reason"
//   anything else       -> "custom error 0x<selector>" plus " (N bytes of data)" when there are
//                          arguments, or "malformed revert data 0x.." when shorter than 4 bytes
// Never fails; hostile bytes give a bounded string (messages are cut at 1024 characters).
std::string DecodeRevertReason(std::span<const uint8_t> revert_data);

}  // namespace atoma::evm
