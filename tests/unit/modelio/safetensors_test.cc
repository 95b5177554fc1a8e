#include "atoma/engine/safetensors.h"

#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace atoma::engine {
namespace {

using ::testing::ElementsAre;
using testing::FileImage;
using ::testing::HasSubstr;
using testing::ReadAll;
using testing::ScratchDir;
using testing::WriteAll;

std::span<const uint8_t> AsBytes(const std::vector<float>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)};
}

std::vector<float> Iota(size_t n, float start) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

std::vector<float> AsFloats(std::span<const uint8_t> bytes) {
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

// ---- dtype helpers -----------------------------------------------------------------------------

TEST(DTypeTest, NamesSizesRoundTrip) {
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI64, DType::kI32,
                  DType::kI16, DType::kI8, DType::kU8, DType::kBool}) {
    auto back = DTypeFromName(DTypeName(d));
    ASSERT_TRUE(back.has_value()) << DTypeName(d);
    EXPECT_EQ(*back, d);
  }
  EXPECT_EQ(DTypeSize(DType::kF32), 4);
  EXPECT_EQ(DTypeSize(DType::kBF16), 2);
  EXPECT_EQ(DTypeSize(DType::kF64), 8);
  EXPECT_EQ(DTypeSize(DType::kBool), 1);
  EXPECT_STREQ(DTypeName(DType::kBF16), "BF16");
  EXPECT_FALSE(DTypeFromName("F8_E4M3").has_value());
  EXPECT_FALSE(DTypeFromName("f32").has_value());
}

// ---- header parser -----------------------------------------------------------------------------

TEST(ParseHeaderTest, ValidHeader) {
  auto h = ParseSafetensorsHeader(
      R"({"__metadata__":{"format":"pt"},
          "a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},
          "b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]},
          "s":{"dtype":"I64","shape":[],"data_offsets":[32,40]},
          "e":{"dtype":"F16","shape":[0,5],"data_offsets":[40,40]}})",
      40);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->metadata.at("format"), "pt");
  ASSERT_EQ(h->tensors.size(), 4u);
  const TensorInfo& a = h->tensors.at("a");
  EXPECT_EQ(a.dtype, DType::kF32);
  EXPECT_THAT(a.shape, ElementsAre(2, 3));
  EXPECT_EQ(a.begin, 0u);
  EXPECT_EQ(a.end, 24u);
  EXPECT_EQ(h->tensors.at("b").dtype, DType::kBF16);
  EXPECT_TRUE(h->tensors.at("s").shape.empty());  // scalar: one element
  EXPECT_EQ(h->tensors.at("e").end, 40u);
}

TEST(ParseHeaderTest, EmptyObjectIsValid) {
  auto h = ParseSafetensorsHeader("{}", 0);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_TRUE(h->tensors.empty());
}

struct BadHeaderCase {
  const char* label;
  const char* header;
  uint64_t data_size;
  absl::StatusCode code;
  const char* must_mention;  // tensor name or key the message must name
};

class BadHeaderTest : public ::testing::TestWithParam<BadHeaderCase> {};

TEST_P(BadHeaderTest, RejectedWithClearMessage) {
  const BadHeaderCase& c = GetParam();
  auto h = ParseSafetensorsHeader(c.header, c.data_size);
  ASSERT_FALSE(h.ok()) << c.label;
  EXPECT_EQ(h.status().code(), c.code) << h.status();
  EXPECT_THAT(std::string(h.status().message()), HasSubstr(c.must_mention)) << h.status();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadHeaderTest,
    ::testing::Values(
        BadHeaderCase{"not json", "{\"a\":", 0, absl::StatusCode::kInvalidArgument, "JSON"},
        BadHeaderCase{"array", "[1,2]", 0, absl::StatusCode::kInvalidArgument, "object"},
        BadHeaderCase{"entry not object", R"({"w":5})", 0, absl::StatusCode::kInvalidArgument,
                      "'w'"},
        BadHeaderCase{"no dtype", R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4,
                      absl::StatusCode::kInvalidArgument, "'w'"},
        BadHeaderCase{"unknown dtype", R"({"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})",
                      4, absl::StatusCode::kInvalidArgument, "F33"},
        BadHeaderCase{"unsupported dtype",
                      R"({"w8":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", 4,
                      absl::StatusCode::kUnimplemented, "'w8'"},
        BadHeaderCase{"no shape", R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4,
                      absl::StatusCode::kInvalidArgument, "'w'"},
        BadHeaderCase{"negative dim",
                      R"({"neg":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4,
                      absl::StatusCode::kInvalidArgument, "'neg'"},
        BadHeaderCase{"float dim", R"({"fd":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})",
                      4, absl::StatusCode::kInvalidArgument, "'fd'"},
        BadHeaderCase{
            "overflowing shape",
            R"({"big":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4,
            absl::StatusCode::kInvalidArgument, "overflow"},
        BadHeaderCase{"offsets wrong arity",
                      R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4,
                      absl::StatusCode::kInvalidArgument, "data_offsets"},
        BadHeaderCase{"offsets reversed",
                      R"({"rev":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", 8,
                      absl::StatusCode::kInvalidArgument, "'rev'"},
        BadHeaderCase{"offsets lie about size",
                      R"({"liar":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 8,
                      absl::StatusCode::kInvalidArgument, "'liar'"},
        BadHeaderCase{"offsets beyond data",
                      R"({"past":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 8,
                      absl::StatusCode::kInvalidArgument, "truncated"},
        BadHeaderCase{"overlap",
                      R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                          "y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                      12, absl::StatusCode::kInvalidArgument, "overlap"},
        BadHeaderCase{"metadata not object", R"({"__metadata__":[1]})", 0,
                      absl::StatusCode::kInvalidArgument, "__metadata__"},
        BadHeaderCase{"metadata value not string", R"({"__metadata__":{"k":1}})", 0,
                      absl::StatusCode::kInvalidArgument, "'k'"}),
    [](const auto& param_info) {
      std::string s = param_info.param.label;
      for (char& ch : s) {
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return s;
    });

TEST(ParseHeaderTest, OverlapNamesBothTensors) {
  auto h = ParseSafetensorsHeader(
      R"({"first":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
          "second":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      12);
  ASSERT_FALSE(h.ok());
  EXPECT_THAT(std::string(h.status().message()), HasSubstr("'first'"));
  EXPECT_THAT(std::string(h.status().message()), HasSubstr("'second'"));
}

TEST(ParseHeaderTest, HostileNamesAreEscapedAndCut) {
  std::string name(5000, 'n');
  name[0] = '\n';
  std::string header = "{\"" + std::string("\\n") + name.substr(1) +
                       R"(":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}})";
  auto h = ParseSafetensorsHeader(header, 8);
  ASSERT_FALSE(h.ok());
  EXPECT_LT(h.status().message().size(), 600u);
  EXPECT_THAT(std::string(h.status().message()), HasSubstr("\\n"));
}

TEST(ParseFileTest, Framing) {
  uint64_t data_offset = 0;
  std::string header = R"({"t":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}})";
  std::string img = FileImage(header, "abc");
  std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(img.data()), img.size());
  auto h = ParseSafetensorsFile(bytes, &data_offset);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(data_offset, 8 + header.size());

  // Shorter than the length prefix.
  auto short_file = ParseSafetensorsFile(bytes.first(5), nullptr);
  ASSERT_FALSE(short_file.ok());
  EXPECT_THAT(std::string(short_file.status().message()), HasSubstr("truncated"));
  // Header length beyond the file.
  auto cut = ParseSafetensorsFile(bytes.first(8 + header.size() - 1), nullptr);
  ASSERT_FALSE(cut.ok());
  EXPECT_THAT(std::string(cut.status().message()), HasSubstr("past the end"));
  // Data cut short: the tensor names itself.
  auto data_cut = ParseSafetensorsFile(bytes.first(img.size() - 1), nullptr);
  ASSERT_FALSE(data_cut.ok());
  EXPECT_THAT(std::string(data_cut.status().message()), HasSubstr("'t'"));
  // Absurd length prefix.
  std::string huge = img;
  huge[7] = '\x7f';
  auto h2 =
      ParseSafetensorsFile({reinterpret_cast<const uint8_t*>(huge.data()), huge.size()}, nullptr);
  ASSERT_FALSE(h2.ok());
  EXPECT_THAT(std::string(h2.status().message()), HasSubstr("exceeds"));
}

// ---- writer and WeightStore --------------------------------------------------------------------

TEST(WriterTest, AddValidatesInput) {
  SafetensorsWriter w;
  std::vector<float> six = Iota(6, 0);
  EXPECT_EQ(w.Add("a", DType::kF32, {2, 2}, AsBytes(six)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(w.Add("a", DType::kF32, {-2, -3}, AsBytes(six)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(w.Add("", DType::kF32, {6}, AsBytes(six)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(w.Add("__metadata__", DType::kF32, {6}, AsBytes(six)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(w.Add("a", DType::kF32, {2, 3}, AsBytes(six)).ok());
  EXPECT_EQ(w.Add("a", DType::kF32, {6}, AsBytes(six)).code(), absl::StatusCode::kInvalidArgument);
}

TEST(WriterTest, RoundTripSingleFile) {
  ScratchDir dir;
  SafetensorsWriter w;
  std::vector<float> a = Iota(6, 1.5f), b = Iota(5, -2.0f);
  std::vector<uint8_t> c = {1, 2, 3};
  std::vector<uint16_t> bf = {0x3f80, 0x4000};
  ASSERT_TRUE(w.Add("model.a", DType::kF32, {2, 3}, AsBytes(a)).ok());
  ASSERT_TRUE(w.Add("model.c", DType::kU8, {3}, c).ok());
  ASSERT_TRUE(w.Add("model.b", DType::kF32, {5}, AsBytes(b)).ok());
  ASSERT_TRUE(
      w.Add("model.bf", DType::kBF16, {2}, {reinterpret_cast<const uint8_t*>(bf.data()), 4}).ok());
  ASSERT_TRUE(
      w.AddGenerated("model.gen", DType::kF32, {3}, [](uint64_t off, std::span<uint8_t> out) {
         for (size_t i = 0; i < out.size(); ++i) {
           out[i] = static_cast<uint8_t>(off + i);
         }
       }).ok());
  w.SetMetadata("format", "pt");
  uint64_t last_written = 0, seen_total = 0;
  w.SetProgress([&](uint64_t written, uint64_t total) {
    EXPECT_GE(written, last_written);
    last_written = written;
    seen_total = total;
  });
  ASSERT_TRUE(w.Write(dir.path() / "model.safetensors").ok());
  const std::string img = ReadAll(dir.path() / "model.safetensors");
  EXPECT_EQ(img.size(), w.FileSize());
  EXPECT_EQ(last_written, img.size());
  EXPECT_EQ(seen_total, img.size());
  // Data starts 8-aligned, so every tensor is aligned to its element size.
  uint64_t data_offset = 0;
  auto parsed = ParseSafetensorsFile({reinterpret_cast<const uint8_t*>(img.data()), img.size()},
                                     &data_offset);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(data_offset % 8, 0u);
  for (const auto& [name, info] : parsed->tensors) {
    EXPECT_EQ(info.begin % DTypeSize(info.dtype), 0u) << name;
  }
  // No temporary files left behind.
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);

  auto store = WeightStore::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_THAT((*store)->Names(),
              ElementsAre("model.a", "model.b", "model.bf", "model.c", "model.gen"));
  ASSERT_EQ((*store)->Files().size(), 1u);
  auto va = (*store)->Get("model.a");
  ASSERT_TRUE(va.ok());
  EXPECT_EQ(va->dtype, DType::kF32);
  EXPECT_THAT(va->shape, ElementsAre(2, 3));
  EXPECT_EQ(va->file, "model.safetensors");
  EXPECT_EQ(AsFloats(va->bytes), a);
  EXPECT_EQ(AsFloats((*store)->Get("model.b")->bytes), b);
  auto vc = (*store)->Get("model.c");
  EXPECT_EQ(std::vector<uint8_t>(vc->bytes.begin(), vc->bytes.end()), c);
  auto vbf = (*store)->Get("model.bf");
  EXPECT_EQ(vbf->dtype, DType::kBF16);
  EXPECT_EQ(std::memcmp(vbf->bytes.data(), bf.data(), 4), 0);
  auto vg = (*store)->Get("model.gen");
  EXPECT_THAT(std::vector<uint8_t>(vg->bytes.begin(), vg->bytes.end()),
              ElementsAre(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11));
  EXPECT_TRUE((*store)->Has("model.a"));
  EXPECT_FALSE((*store)->Has("model.z"));
  auto missing = (*store)->Get("model.z");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("model.z"));
}

TEST(WriterTest, WriteIsDeterministicAndOverwrites) {
  ScratchDir dir;
  auto write = [&](float base) {
    SafetensorsWriter w;
    std::vector<float> a = Iota(4, base);
    EXPECT_TRUE(w.Add("t", DType::kF32, {4}, AsBytes(a)).ok());
    EXPECT_TRUE(w.Write(dir.path() / "x.safetensors").ok());
    return ReadAll(dir.path() / "x.safetensors");
  };
  std::string first = write(0), again = write(0), other = write(1);
  EXPECT_EQ(first, again);
  EXPECT_NE(first, other);
}

TEST(WriterTest, WriteIntoMissingFolderFails) {
  ScratchDir dir;
  SafetensorsWriter w;
  auto s = w.Write(dir.path() / "no" / "such" / "model.safetensors");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("no/such"));
}

// Writes a two-shard checkpoint: a,b in shard 1; c in shard 2.
void WriteSharded(const std::filesystem::path& dir, std::string_view index_json) {
  SafetensorsWriter w1, w2;
  std::vector<float> a = Iota(4, 0), b = Iota(2, 10), c = Iota(3, 20);
  ASSERT_TRUE(w1.Add("a", DType::kF32, {4}, AsBytes(a)).ok());
  ASSERT_TRUE(w1.Add("b", DType::kF32, {2}, AsBytes(b)).ok());
  ASSERT_TRUE(w2.Add("c", DType::kF32, {3}, AsBytes(c)).ok());
  ASSERT_TRUE(w1.Write(dir / "model-00001-of-00002.safetensors").ok());
  ASSERT_TRUE(w2.Write(dir / "model-00002-of-00002.safetensors").ok());
  WriteAll(dir / "model.safetensors.index.json", index_json);
}

constexpr char kGoodIndex[] = R"({"metadata":{"total_size":36},"weight_map":{
  "a":"model-00001-of-00002.safetensors","b":"model-00001-of-00002.safetensors",
  "c":"model-00002-of-00002.safetensors"}})";

TEST(WeightStoreTest, ShardedRoundTrip) {
  ScratchDir dir;
  WriteSharded(dir.path(), kGoodIndex);
  auto store = WeightStore::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_THAT((*store)->Names(), ElementsAre("a", "b", "c"));
  auto files = (*store)->Files();
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].filename(), "model-00001-of-00002.safetensors");
  EXPECT_EQ(files[1].filename(), "model-00002-of-00002.safetensors");
  auto c = (*store)->Get("c");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->file, "model-00002-of-00002.safetensors");
  EXPECT_EQ(AsFloats(c->bytes), Iota(3, 20));
  EXPECT_EQ(AsFloats((*store)->Get("b")->bytes), Iota(2, 10));
}

TEST(WeightStoreTest, TruncatedShardIsNamed) {
  ScratchDir dir;
  WriteSharded(dir.path(), kGoodIndex);
  const auto shard = dir.path() / "model-00002-of-00002.safetensors";
  std::string img = ReadAll(shard);
  WriteAll(shard, img.substr(0, img.size() - 1));
  auto store = WeightStore::Open(dir.path());
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("model-00002-of-00002"));
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("'c'"));
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("truncated"));
}

TEST(WeightStoreTest, IndexNamesMissingShard) {
  ScratchDir dir;
  WriteSharded(dir.path(), R"({"weight_map":{"a":"model-00001-of-00002.safetensors",
                                              "q":"model-00003-of-00003.safetensors"}})");
  auto store = WeightStore::Open(dir.path());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("model-00003-of-00003"));
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("'q'"));
}

TEST(WeightStoreTest, IndexNamesTensorTheShardLacks) {
  ScratchDir dir;
  WriteSharded(dir.path(), R"({"weight_map":{"a":"model-00001-of-00002.safetensors",
                                              "c":"model-00001-of-00002.safetensors"}})");
  auto store = WeightStore::Open(dir.path());
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("'c'"));
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("model-00001-of-00002.safetensors"));
}

TEST(WeightStoreTest, IndexMayNotEscapeTheFolder) {
  ScratchDir dir;
  WriteSharded(dir.path(), R"({"weight_map":{"a":"../model-00001-of-00002.safetensors"}})");
  auto store = WeightStore::Open(dir.path());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("plain file name"));
}

TEST(WeightStoreTest, IndexMayNameOnlyFilesTheModelDigestCovers) {
  // The model digest hashes *.safetensors only: a shard under another name would be weights the
  // ledger's digest does not name (a node could serve other weights under a registered digest).
  ScratchDir dir;
  WriteSharded(dir.path(), R"({"weight_map":{"a":"model-00001-of-00002.safetensors",
                                              "b":"weights.bin"}})");
  std::filesystem::copy_file(dir.path() / "model-00002-of-00002.safetensors",
                             dir.path() / "weights.bin");
  auto store = WeightStore::Open(dir.path());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("weights.bin"));
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("model digest"));
}

TEST(WeightStoreTest, BadIndexJson) {
  ScratchDir dir;
  WriteSharded(dir.path(), R"({"weight_map": 3})");
  auto store = WeightStore::Open(dir.path());
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("model.safetensors.index.json"));
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("weight_map"));
}

TEST(WeightStoreTest, MissingFolderAndFiles) {
  ScratchDir dir;
  auto none = WeightStore::Open(dir.path() / "absent");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  auto empty = WeightStore::Open(dir.path());
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(empty.status().message()), HasSubstr("model.safetensors"));
}

class CorruptFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SafetensorsWriter w;
    std::vector<float> a = Iota(8, 0), b = Iota(8, 100);
    ASSERT_TRUE(w.Add("layer.a", DType::kF32, {8}, AsBytes(a)).ok());
    ASSERT_TRUE(w.Add("layer.b", DType::kF32, {2, 4}, AsBytes(b)).ok());
    ASSERT_TRUE(w.Write(path()).ok());
    image_ = ReadAll(path());
  }
  std::filesystem::path path() const { return dir_.path() / "model.safetensors"; }
  absl::Status OpenWith(std::string_view image) {
    WriteAll(path(), image);
    return WeightStore::Open(dir_.path()).status();
  }
  ScratchDir dir_;
  std::string image_;
};

TEST_F(CorruptFileTest, TruncatedData) {
  absl::Status s = OpenWith(image_.substr(0, image_.size() - 4));
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("model.safetensors"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("'layer.b'"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("truncated"));
}

TEST_F(CorruptFileTest, TruncatedInsideHeader) {
  absl::Status s = OpenWith(image_.substr(0, 20));
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("model.safetensors"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("past the end"));
}

TEST_F(CorruptFileTest, TooShortForLength) {
  absl::Status s = OpenWith(image_.substr(0, 3));
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("truncated"));
  s = OpenWith("");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("model.safetensors"));
}

TEST_F(CorruptFileTest, LyingOffsets) {
  // Shift layer.b's offsets onto layer.a's bytes: same length, so only the overlap check sees it.
  std::string header = R"({"layer.a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]},)"
                       R"("layer.b":{"dtype":"F32","shape":[2,4],"data_offsets":[16,48]}})";
  absl::Status s = OpenWith(FileImage(header, std::string(64, '\0')));
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("overlap"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("layer.b"));
  // Offsets whose length disagrees with the shape.
  header = R"({"layer.a":{"dtype":"F32","shape":[8],"data_offsets":[0,28]}})";
  s = OpenWith(FileImage(header, std::string(64, '\0')));
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("'layer.a'"));
}

}  // namespace
}  // namespace atoma::engine
