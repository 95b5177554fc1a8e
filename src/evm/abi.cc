#include "atoma/evm/abi.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "atoma/common/status.h"
#include "atoma/crypto/keccak.h"
#include "atoma/evm/hex.h"

namespace atoma::evm {
namespace {

// absl (Debian's build) has its own string_view; std::string_view needs this to reach StrCat.
inline absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr size_t kWord = 32;
// Deepest nesting of tuples and arrays Parse accepts: bounds the recursion of parse, encode
// and decode for type strings from anywhere (fuzzers, configs). Real contracts use 3 or 4.
constexpr int kMaxTypeDepth = 32;
// Largest static size of a type (bytes). Anything near this is a mistake or an attack; the cap
// keeps size arithmetic far from overflow.
constexpr size_t kMaxStaticSize = size_t{1} << 30;

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("abi: ", what));
}

// ---- type strings ----

class TypeParser {
 public:
  explicit TypeParser(std::string_view text) : text_(text) {}

  absl::StatusOr<AbiType> Type(int depth) {
    if (depth > kMaxTypeDepth) return Invalid("types nested too deeply");
    ASSIGN_OR_RETURN(AbiType type, Base(depth));
    while (pos_ < text_.size() && text_[pos_] == '[') {
      if (++depth > kMaxTypeDepth) return Invalid("types nested too deeply");
      ++pos_;
      const size_t start = pos_;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
      const std::string_view digits = text_.substr(start, pos_ - start);
      if (pos_ >= text_.size() || text_[pos_] != ']') return Invalid("expected ']'");
      ++pos_;
      if (digits.empty()) {
        type = AbiType::Array(std::move(type));
        continue;
      }
      if (digits[0] == '0' || digits.size() > 9) {
        return Invalid(absl::StrCat("bad fixed array length [", Sv(digits), "]"));
      }
      const size_t k = std::stoul(std::string(digits));
      if (!type.IsDynamic() && type.HeadSize() > kMaxStaticSize / k) {
        return Invalid("static type too large");
      }
      type = AbiType::FixedArray(std::move(type), k);
    }
    return type;
  }

  // Comma-separated types up to (not including) `close` or the end of the text.
  absl::StatusOr<std::vector<AbiType>> List(int depth, bool until_paren) {
    std::vector<AbiType> types;
    const bool at_end = until_paren ? Peek(')') : pos_ == text_.size();
    if (at_end) return types;
    while (true) {
      ASSIGN_OR_RETURN(AbiType t, Type(depth));
      types.push_back(std::move(t));
      if (!Peek(',')) break;
      ++pos_;
    }
    return types;
  }

  bool Done() const { return pos_ == text_.size(); }
  bool Peek(char c) const { return pos_ < text_.size() && text_[pos_] == c; }
  void Skip() { ++pos_; }

 private:
  absl::StatusOr<AbiType> Base(int depth) {
    if (Peek('(')) {
      ++pos_;
      ASSIGN_OR_RETURN(std::vector<AbiType> parts, List(depth + 1, true));
      if (!Peek(')')) return Invalid("expected ')'");
      ++pos_;
      if (parts.empty()) return Invalid("empty tuple");
      size_t static_size = 0;
      for (const AbiType& p : parts) {
        if (!p.IsDynamic()) static_size += p.HeadSize();
      }
      if (static_size > kMaxStaticSize) return Invalid("static type too large");
      return AbiType::Tuple(std::move(parts));
    }
    const size_t start = pos_;
    while (pos_ < text_.size() && ((text_[pos_] >= 'a' && text_[pos_] <= 'z') ||
                                   (text_[pos_] >= '0' && text_[pos_] <= '9'))) {
      ++pos_;
    }
    const std::string_view name = text_.substr(start, pos_ - start);
    if (name == "address") return AbiType::Address();
    if (name == "bool") return AbiType::Bool();
    if (name == "string") return AbiType::String();
    if (name == "bytes") return AbiType::Bytes();
    auto number = [](std::string_view digits, int lo, int hi) -> int {
      if (digits.empty() || digits.size() > 3 || digits[0] == '0') return -1;
      int n = 0;
      for (char c : digits) {
        if (c < '0' || c > '9') return -1;
        n = n * 10 + (c - '0');
      }
      return n >= lo && n <= hi ? n : -1;
    };
    if (name.starts_with("bytes")) {
      const int n = number(name.substr(5), 1, 32);
      if (n > 0) return AbiType::FixedBytes(static_cast<size_t>(n));
    } else if (name.starts_with("uint")) {
      const int n = number(name.substr(4), 8, 256);
      if (n > 0 && n % 8 == 0) return AbiType::Uint(n);
    } else if (name.starts_with("int")) {
      const int n = number(name.substr(3), 8, 256);
      if (n > 0 && n % 8 == 0) return AbiType::Int(n);
    }
    return Invalid(absl::StrCat("unknown type \"", Sv(name.substr(0, 40)), "\""));
  }

  std::string_view text_;
  size_t pos_ = 0;
};

// ---- encoding ----

void AppendWord(std::vector<uint8_t>& out, const Uint256& v) {
  const auto be = v.ToBigEndian();
  out.insert(out.end(), be.begin(), be.end());
}

void AppendPadded(std::vector<uint8_t>& out, std::span<const uint8_t> bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
  out.resize(out.size() + (kWord - bytes.size() % kWord) % kWord, 0);
}

// True when `v` (a two's complement word) is representable in `bits` bits.
bool FitsSigned(const Uint256& v, int bits) {
  const Uint256 high = v >> static_cast<unsigned>(bits - 1);
  return high.IsZero() || high == (Uint256::Max() >> static_cast<unsigned>(bits - 1));
}

absl::Status KindError(const AbiType& type, absl::string_view got) {
  return Invalid(absl::StrCat("a ", type.ToString(), " value expected, got ", got));
}

absl::string_view KindName(AbiValue::Kind k) {
  switch (k) {
    case AbiValue::Kind::kUint:
      return "a number";
    case AbiValue::Kind::kAddress:
      return "an address";
    case AbiValue::Kind::kBool:
      return "a bool";
    case AbiValue::Kind::kBytes:
      return "bytes";
    case AbiValue::Kind::kString:
      return "a string";
    case AbiValue::Kind::kList:
      return "a list";
  }
  return "?";
}

absl::Status EncodeValue(const AbiType& type, const AbiValue& value, std::vector<uint8_t>& out);

// Encodes a sequence (tuple, or array elements): heads, then the tails of dynamic members, with
// offsets relative to the start of the sequence.
template <typename TypeAt>
absl::Status EncodeSequence(TypeAt type_at, const std::vector<AbiValue>& values,
                            std::vector<uint8_t>& out) {
  size_t head_size = 0;
  for (size_t i = 0; i < values.size(); ++i) head_size += type_at(i).HeadSize();
  const size_t base = out.size();
  out.reserve(base + head_size);
  std::vector<uint8_t> tails;
  for (size_t i = 0; i < values.size(); ++i) {
    const AbiType& t = type_at(i);
    if (t.IsDynamic()) {
      AppendWord(out, Uint256(static_cast<uint64_t>(head_size + tails.size())));
      RETURN_IF_ERROR(EncodeValue(t, values[i], tails));
    } else {
      RETURN_IF_ERROR(EncodeValue(t, values[i], out));
    }
  }
  out.insert(out.end(), tails.begin(), tails.end());
  return absl::OkStatus();
}

absl::Status EncodeValue(const AbiType& type, const AbiValue& value, std::vector<uint8_t>& out) {
  using K = AbiType::Kind;
  const AbiValue::Kind vk = value.kind();
  switch (type.kind()) {
    case K::kUint:
      if (vk != AbiValue::Kind::kUint) return KindError(type, KindName(vk));
      if (value.uint().BitLength() > type.bits()) {
        return Invalid(absl::StrCat(value.uint().ToDecimal(), " does not fit ", type.ToString()));
      }
      AppendWord(out, value.uint());
      return absl::OkStatus();
    case K::kInt:
      if (vk != AbiValue::Kind::kUint) return KindError(type, KindName(vk));
      if (!FitsSigned(value.uint(), type.bits())) {
        return Invalid(absl::StrCat("two's complement word ", value.uint().ToHex(),
                                    " does not fit ", type.ToString()));
      }
      AppendWord(out, value.uint());
      return absl::OkStatus();
    case K::kAddress:
      if (vk != AbiValue::Kind::kAddress) return KindError(type, KindName(vk));
      out.resize(out.size() + 12, 0);
      out.insert(out.end(), value.address().begin(), value.address().end());
      return absl::OkStatus();
    case K::kBool:
      if (vk != AbiValue::Kind::kBool) return KindError(type, KindName(vk));
      AppendWord(out, Uint256(value.boolean() ? 1 : 0));
      return absl::OkStatus();
    case K::kFixedBytes:
      if (vk != AbiValue::Kind::kBytes) return KindError(type, KindName(vk));
      if (value.bytes().size() != type.size()) {
        return Invalid(absl::StrCat(type.ToString(), " needs ", type.size(), " bytes, got ",
                                    value.bytes().size()));
      }
      AppendPadded(out, value.bytes());
      return absl::OkStatus();
    case K::kBytes:
    case K::kString: {
      std::span<const uint8_t> bytes;
      if (type.kind() == K::kBytes) {
        if (vk != AbiValue::Kind::kBytes) return KindError(type, KindName(vk));
        bytes = value.bytes();
      } else {
        if (vk != AbiValue::Kind::kString) return KindError(type, KindName(vk));
        bytes = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(value.string().data()),
                                         value.string().size());
      }
      AppendWord(out, Uint256(static_cast<uint64_t>(bytes.size())));
      AppendPadded(out, bytes);
      return absl::OkStatus();
    }
    case K::kArray:
    case K::kFixedArray: {
      if (vk != AbiValue::Kind::kList) return KindError(type, KindName(vk));
      const auto& items = value.list();
      if (type.kind() == K::kFixedArray && items.size() != type.size()) {
        return Invalid(
            absl::StrCat(type.ToString(), " needs ", type.size(), " elements, got ", items.size()));
      }
      if (type.kind() == K::kArray) AppendWord(out, Uint256(static_cast<uint64_t>(items.size())));
      const AbiType& element = type.element();
      return EncodeSequence([&](size_t) -> const AbiType& { return element; }, items, out);
    }
    case K::kTuple: {
      if (vk != AbiValue::Kind::kList) return KindError(type, KindName(vk));
      const auto& items = value.list();
      if (items.size() != type.components().size()) {
        return Invalid(absl::StrCat(type.ToString(), " has ", type.components().size(),
                                    " components, got ", items.size(), " values"));
      }
      return EncodeSequence([&](size_t i) -> const AbiType& { return type.components()[i]; }, items,
                            out);
    }
  }
  return Invalid("unknown type kind");
}

// ---- decoding ----

class Decoder {
 public:
  // Canonical encodings never decode to more than their own size (see Charge), so the input size
  // bounds what a hostile input can make us allocate.
  explicit Decoder(size_t input_size) : budget_(input_size) {}

  template <typename TypeAt>
  absl::Status Sequence(TypeAt type_at, size_t count, std::span<const uint8_t> block,
                        std::vector<AbiValue>& out) {
    out.reserve(count);
    size_t pos = 0;
    for (size_t i = 0; i < count; ++i) {
      const AbiType& t = type_at(i);
      if (t.IsDynamic()) {
        if (block.size() - pos < kWord) return Invalid("truncated head (offset)");
        ASSIGN_OR_RETURN(const size_t offset, Length(block.subspan(pos, kWord), block.size()));
        AbiValue v;
        RETURN_IF_ERROR(Value(t, block.subspan(offset), v));
        out.push_back(std::move(v));
        pos += kWord;
      } else {
        const size_t size = t.HeadSize();
        if (block.size() - pos < size) return Invalid("truncated head");
        AbiValue v;
        RETURN_IF_ERROR(Value(t, block.subspan(pos, size), v));
        out.push_back(std::move(v));
        pos += size;
      }
    }
    return absl::OkStatus();
  }

  // Decodes one value of `type` that starts at data[0] (data runs to the end of the enclosing
  // block: a dynamic value's tail may extend that far).
  absl::Status Value(const AbiType& type, std::span<const uint8_t> data, AbiValue& out) {
    using K = AbiType::Kind;
    switch (type.kind()) {
      case K::kUint:
      case K::kInt:
      case K::kAddress:
      case K::kBool:
      case K::kFixedBytes:
        return Static(type, data, out);
      case K::kBytes:
      case K::kString: {
        if (data.size() < kWord) return Invalid("truncated length of bytes/string");
        ASSIGN_OR_RETURN(const size_t len, Length(data.first(kWord), data.size() - kWord));
        RETURN_IF_ERROR(Charge(kWord + len));
        const auto bytes = data.subspan(kWord, len);
        if (type.kind() == K::kBytes) {
          out = AbiValue::Bytes(bytes);
        } else {
          out = AbiValue::String(std::string(bytes.begin(), bytes.end()));
        }
        return absl::OkStatus();
      }
      case K::kArray: {
        if (data.size() < kWord) return Invalid("truncated array length");
        const size_t elem_head = std::max(type.element().HeadSize(), kWord);
        const size_t room = data.size() - kWord;
        ASSIGN_OR_RETURN(const size_t n, Length(data.first(kWord), room / elem_head));
        RETURN_IF_ERROR(Charge(kWord));
        std::vector<AbiValue> items;
        const AbiType& element = type.element();
        RETURN_IF_ERROR(Sequence([&](size_t) -> const AbiType& { return element; }, n,
                                 data.subspan(kWord), items));
        out = AbiValue::List(std::move(items));
        return absl::OkStatus();
      }
      case K::kFixedArray: {
        const size_t elem_head = std::max(type.element().HeadSize(), kWord);
        if (type.size() > data.size() / elem_head) return Invalid("truncated fixed array");
        std::vector<AbiValue> items;
        const AbiType& element = type.element();
        RETURN_IF_ERROR(
            Sequence([&](size_t) -> const AbiType& { return element; }, type.size(), data, items));
        out = AbiValue::List(std::move(items));
        return absl::OkStatus();
      }
      case K::kTuple: {
        std::vector<AbiValue> items;
        RETURN_IF_ERROR(Sequence([&](size_t i) -> const AbiType& { return type.components()[i]; },
                                 type.components().size(), data, items));
        out = AbiValue::List(std::move(items));
        return absl::OkStatus();
      }
    }
    return Invalid("unknown type kind");
  }

 private:
  // Every decoded word and byte is charged once; a canonical encoding holds each of them at its
  // own place, so the total never exceeds the input. More means offsets that share data.
  absl::Status Charge(size_t n) {
    if (n > budget_) return Invalid("offsets share data (decoded size exceeds the input)");
    budget_ -= n;
    return absl::OkStatus();
  }

  // A word read as a length or an offset, at most `max`.
  static absl::StatusOr<size_t> Length(std::span<const uint8_t> word, size_t max) {
    const Uint256 v = Uint256::FromBigEndian(word.first<kWord>());
    if (!v.FitsUint64() || v.Low64() > max) {
      return Invalid(
          absl::StrCat("offset or length ", v.ToHex(), " out of bounds (max ", max, ")"));
    }
    return static_cast<size_t>(v.Low64());
  }

  absl::Status Static(const AbiType& type, std::span<const uint8_t> data, AbiValue& out) {
    using K = AbiType::Kind;
    if (data.size() < kWord) return Invalid("truncated value");
    RETURN_IF_ERROR(Charge(kWord));
    const auto word = data.first<kWord>();
    const Uint256 v = Uint256::FromBigEndian(word);
    switch (type.kind()) {
      case K::kUint:
        if (v.BitLength() > type.bits()) return Invalid(absl::StrCat("dirty ", type.ToString()));
        out = AbiValue::Uint(v);
        return absl::OkStatus();
      case K::kInt:
        if (!FitsSigned(v, type.bits())) return Invalid(absl::StrCat("dirty ", type.ToString()));
        out = AbiValue::Uint(v);
        return absl::OkStatus();
      case K::kAddress: {
        if (v.BitLength() > 160) return Invalid("dirty address");
        crypto::Address a;
        std::copy(word.begin() + 12, word.end(), a.begin());
        out = AbiValue::Address(a);
        return absl::OkStatus();
      }
      case K::kBool:
        if (v.BitLength() > 1) return Invalid("bool neither 0 nor 1");
        out = AbiValue::Bool(!v.IsZero());
        return absl::OkStatus();
      case K::kFixedBytes:
        if (std::any_of(word.begin() + type.size(), word.end(), [](uint8_t b) { return b != 0; })) {
          return Invalid(absl::StrCat("dirty ", type.ToString()));
        }
        out = AbiValue::Bytes(word.first(type.size()));
        return absl::OkStatus();
      default:
        return Invalid("not a static scalar");
    }
  }

  size_t budget_;
};

std::string SanitizedReason(std::string_view text) {
  constexpr size_t kMaxChars = 1024;
  std::string out;
  out.reserve(std::min(text.size(), kMaxChars) + 3);
  for (char c : text.substr(0, kMaxChars)) {
    const unsigned char u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  if (text.size() > kMaxChars) out += "...";
  return out;
}

absl::string_view PanicName(uint64_t code) {
  switch (code) {
    case 0x00:
      return "generic panic";
    case 0x01:
      return "assertion failed";
    case 0x11:
      return "arithmetic overflow";
    case 0x12:
      return "division or modulo by zero";
    case 0x21:
      return "invalid enum value";
    case 0x22:
      return "invalid storage byte array encoding";
    case 0x31:
      return "pop on empty array";
    case 0x32:
      return "array index out of bounds";
    case 0x41:
      return "out of memory";
    case 0x51:
      return "call to an invalid internal function";
    default:
      return "unknown panic code";
  }
}

constexpr std::array<uint8_t, 4> kErrorSelector = {0x08, 0xc3, 0x79, 0xa0};  // Error(string)
constexpr std::array<uint8_t, 4> kPanicSelector = {0x4e, 0x48, 0x7b, 0x71};  // Panic(uint256)

}  // namespace

// ---- AbiType ----

AbiType AbiType::Uint(int bits) { return AbiType(Kind::kUint, bits, 0, {}); }
AbiType AbiType::Int(int bits) { return AbiType(Kind::kInt, bits, 0, {}); }
AbiType AbiType::Address() { return AbiType(Kind::kAddress, 0, 0, {}); }
AbiType AbiType::Bool() { return AbiType(Kind::kBool, 0, 0, {}); }
AbiType AbiType::FixedBytes(size_t n) { return AbiType(Kind::kFixedBytes, 0, n, {}); }
AbiType AbiType::Bytes() { return AbiType(Kind::kBytes, 0, 0, {}); }
AbiType AbiType::String() { return AbiType(Kind::kString, 0, 0, {}); }
AbiType AbiType::Array(AbiType element) {
  std::vector<AbiType> children;
  children.push_back(std::move(element));
  return AbiType(Kind::kArray, 0, 0, std::move(children));
}
AbiType AbiType::FixedArray(AbiType element, size_t k) {
  std::vector<AbiType> children;
  children.push_back(std::move(element));
  return AbiType(Kind::kFixedArray, 0, k, std::move(children));
}
AbiType AbiType::Tuple(std::vector<AbiType> components) {
  return AbiType(Kind::kTuple, 0, 0, std::move(components));
}

bool AbiType::IsDynamic() const {
  switch (kind_) {
    case Kind::kBytes:
    case Kind::kString:
    case Kind::kArray:
      return true;
    case Kind::kFixedArray:
      return children_.front().IsDynamic();
    case Kind::kTuple:
      return std::any_of(children_.begin(), children_.end(),
                         [](const AbiType& c) { return c.IsDynamic(); });
    default:
      return false;
  }
}

size_t AbiType::HeadSize() const {
  if (IsDynamic()) return kWord;
  switch (kind_) {
    case Kind::kFixedArray:
      return size_ * children_.front().HeadSize();
    case Kind::kTuple: {
      size_t total = 0;
      for (const AbiType& c : children_) total += c.HeadSize();
      return total;
    }
    default:
      return kWord;
  }
}

std::string AbiType::ToString() const {
  switch (kind_) {
    case Kind::kUint:
      return absl::StrCat("uint", bits_);
    case Kind::kInt:
      return absl::StrCat("int", bits_);
    case Kind::kAddress:
      return "address";
    case Kind::kBool:
      return "bool";
    case Kind::kFixedBytes:
      return absl::StrCat("bytes", size_);
    case Kind::kBytes:
      return "bytes";
    case Kind::kString:
      return "string";
    case Kind::kArray:
      return absl::StrCat(children_.front().ToString(), "[]");
    case Kind::kFixedArray:
      return absl::StrCat(children_.front().ToString(), "[", size_, "]");
    case Kind::kTuple:
      return absl::StrCat(
          "(",
          absl::StrJoin(children_, ",",
                        [](std::string* out, const AbiType& c) { out->append(c.ToString()); }),
          ")");
  }
  return "?";
}

absl::StatusOr<AbiType> AbiType::Parse(std::string_view text) {
  TypeParser parser(text);
  ASSIGN_OR_RETURN(AbiType type, parser.Type(0));
  if (!parser.Done()) return Invalid("trailing characters after the type");
  return type;
}

absl::StatusOr<std::vector<AbiType>> ParseTypeList(std::string_view text) {
  TypeParser parser(text);
  ASSIGN_OR_RETURN(std::vector<AbiType> types, parser.List(0, false));
  if (!parser.Done()) return Invalid("trailing characters after the type list");
  return types;
}

absl::StatusOr<AbiSignature> ParseSignature(std::string_view signature) {
  auto ident_char = [](char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' ||
           (!first && c >= '0' && c <= '9');
  };
  size_t i = 0;
  while (i < signature.size() && ident_char(signature[i], i == 0)) ++i;
  if (i == 0) return Invalid("a signature starts with a function or event name");
  if (i >= signature.size() || signature[i] != '(' || signature.back() != ')') {
    return Invalid("a signature is name(types)");
  }
  AbiSignature out;
  out.name = std::string(signature.substr(0, i));
  ASSIGN_OR_RETURN(out.inputs, ParseTypeList(signature.substr(i + 1, signature.size() - i - 2)));
  return out;
}

// ---- AbiValue ----

AbiValue AbiValue::Uint(const Uint256& value) {
  AbiValue v;
  v.value_ = value;
  return v;
}
AbiValue AbiValue::Int(int64_t value) {
  if (value >= 0) return Uint(Uint256(static_cast<uint64_t>(value)));
  // Two's complement: ~x == -x - 1, so -|v| is Max - (|v| - 1) = Max - ~v.
  Uint256 word;
  SubUnderflows(Uint256::Max(), Uint256(~static_cast<uint64_t>(value)), &word);
  return Uint(word);
}
AbiValue AbiValue::Address(const crypto::Address& address) {
  AbiValue v;
  v.value_ = address;
  return v;
}
AbiValue AbiValue::Bool(bool value) {
  AbiValue v;
  v.value_ = value;
  return v;
}
AbiValue AbiValue::Bytes(std::vector<uint8_t> bytes) {
  AbiValue v;
  v.value_ = std::move(bytes);
  return v;
}
AbiValue AbiValue::Bytes(std::span<const uint8_t> bytes) {
  return Bytes(std::vector<uint8_t>(bytes.begin(), bytes.end()));
}
AbiValue AbiValue::Bytes32(const crypto::Hash256& word) {
  return Bytes(std::span<const uint8_t>(word));
}
AbiValue AbiValue::String(std::string text) {
  AbiValue v;
  v.value_ = std::move(text);
  return v;
}
AbiValue AbiValue::List(std::vector<AbiValue> items) {
  AbiValue v;
  v.value_ = std::move(items);
  return v;
}

absl::StatusOr<uint64_t> AbiValue::AsU64() const {
  if (kind() != Kind::kUint) return Invalid("not a number");
  if (!uint().FitsUint64()) return absl::OutOfRangeError("abi: value exceeds 64 bits");
  return uint().Low64();
}

absl::StatusOr<int64_t> AbiValue::AsI64() const {
  if (kind() != Kind::kUint) return Invalid("not a number");
  const Uint256& w = uint();
  const uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (w.BitLength() < 256) {
    if (!w.FitsUint64() || w.Low64() > kMax) return absl::OutOfRangeError("abi: exceeds int64");
    return static_cast<int64_t>(w.Low64());
  }
  Uint256 inverted;  // ~w == -w - 1 for a negative w
  SubUnderflows(Uint256::Max(), w, &inverted);
  if (!inverted.FitsUint64() || inverted.Low64() > kMax) {
    return absl::OutOfRangeError("abi: exceeds int64");
  }
  return -static_cast<int64_t>(inverted.Low64()) - 1;
}

absl::StatusOr<crypto::Hash256> AbiValue::AsBytes32() const {
  if (kind() != Kind::kBytes || bytes().size() != 32) return Invalid("not 32 bytes");
  crypto::Hash256 out;
  std::copy(bytes().begin(), bytes().end(), out.begin());
  return out;
}

// ---- functions ----

absl::StatusOr<std::vector<uint8_t>> AbiEncode(const std::vector<AbiType>& types,
                                               const std::vector<AbiValue>& values) {
  if (types.size() != values.size()) {
    return Invalid(absl::StrCat(types.size(), " types but ", values.size(), " values"));
  }
  std::vector<uint8_t> out;
  RETURN_IF_ERROR(
      EncodeSequence([&](size_t i) -> const AbiType& { return types[i]; }, values, out));
  return out;
}

absl::StatusOr<std::vector<AbiValue>> AbiDecode(const std::vector<AbiType>& types,
                                                std::span<const uint8_t> data) {
  Decoder decoder(data.size());
  std::vector<AbiValue> out;
  RETURN_IF_ERROR(decoder.Sequence([&](size_t i) -> const AbiType& { return types[i]; },
                                   types.size(), data, out));
  return out;
}

std::array<uint8_t, 4> Selector(std::string_view signature) {
  const crypto::Hash256 h = crypto::Keccak256Of(signature);
  return {h[0], h[1], h[2], h[3]};
}

crypto::Hash256 EventTopic(std::string_view signature) { return crypto::Keccak256Of(signature); }

absl::StatusOr<std::vector<uint8_t>> EncodeCall(std::string_view signature,
                                                const std::vector<AbiValue>& args) {
  ASSIGN_OR_RETURN(AbiSignature parsed, ParseSignature(signature));
  ASSIGN_OR_RETURN(std::vector<uint8_t> encoded, AbiEncode(parsed.inputs, args));
  const auto selector = Selector(signature);
  encoded.insert(encoded.begin(), selector.begin(), selector.end());
  return encoded;
}

std::optional<std::string> RevertErrorMessage(std::span<const uint8_t> revert_data) {
  if (revert_data.size() < 4 ||
      !std::equal(kErrorSelector.begin(), kErrorSelector.end(), revert_data.begin())) {
    return std::nullopt;
  }
  auto decoded = AbiDecode({AbiType::String()}, revert_data.subspan(4));
  if (!decoded.ok()) return std::nullopt;
  return (*decoded)[0].string();
}

std::string DecodeRevertReason(std::span<const uint8_t> revert_data) {
  if (revert_data.empty()) return "no reason";
  if (revert_data.size() < 4) {
    return absl::StrCat("malformed revert data ", ToHex(revert_data));
  }
  const auto selector = revert_data.first<4>();
  if (std::equal(kErrorSelector.begin(), kErrorSelector.end(), selector.begin())) {
    if (auto message = RevertErrorMessage(revert_data)) return SanitizedReason(*message);
    return absl::StrCat("malformed Error(string) revert data (", revert_data.size(), " bytes)");
  }
  if (std::equal(kPanicSelector.begin(), kPanicSelector.end(), selector.begin())) {
    auto decoded = AbiDecode({AbiType::Uint()}, revert_data.subspan(4));
    if (!decoded.ok()) {
      return absl::StrCat("malformed Panic(uint256) revert data (", revert_data.size(), " bytes)");
    }
    const Uint256& code = (*decoded)[0].uint();
    if (code.FitsUint64() && code.Low64() <= 0xff) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02x", static_cast<unsigned>(code.Low64()));
      return absl::StrCat("panic ", hex, " (", PanicName(code.Low64()), ")");
    }
    return absl::StrCat("panic ", code.ToHex(), " (unknown panic code)");
  }
  std::string out = absl::StrCat("custom error ", ToHex(selector));
  if (revert_data.size() > 4)
    absl::StrAppend(&out, " (", revert_data.size() - 4, " bytes of data)");
  return out;
}

}  // namespace atoma::evm
