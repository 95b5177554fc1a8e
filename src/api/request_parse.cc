#include "request_parse.h"

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "convert.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"

namespace atoma::api {
namespace {

namespace pb = google::protobuf;

void StringsToBytes(pb::DescriptorProto* message) {
  for (pb::FieldDescriptorProto& field : *message->mutable_field()) {
    if (field.type() == pb::FieldDescriptorProto::TYPE_STRING) {
      field.set_type(pb::FieldDescriptorProto::TYPE_BYTES);
    }
  }
  for (pb::DescriptorProto& nested : *message->mutable_nested_type()) StringsToBytes(&nested);
}

// A copy of a request's .proto file (and its imports) in which every string field is bytes, so
// that parsing never fails on UTF-8. Built once per file, kept for the process.
class LenientPool {
 public:
  const pb::Descriptor* Find(const pb::Descriptor* original) {
    std::lock_guard<std::mutex> lock(mu_);
    if (AddFile(original->file()) == nullptr) return nullptr;
    return pool_.FindMessageTypeByName(original->full_name());
  }
  pb::DynamicMessageFactory& factory() { return factory_; }

 private:
  const pb::FileDescriptor* AddFile(const pb::FileDescriptor* file) {
    if (const pb::FileDescriptor* done = pool_.FindFileByName(file->name())) return done;
    for (int i = 0; i < file->dependency_count(); ++i) {
      if (AddFile(file->dependency(i)) == nullptr) return nullptr;
    }
    pb::FileDescriptorProto proto;
    file->CopyTo(&proto);
    for (pb::DescriptorProto& message : *proto.mutable_message_type()) StringsToBytes(&message);
    return pool_.BuildFile(proto);
  }

  std::mutex mu_;
  pb::DescriptorPool pool_;
  pb::DynamicMessageFactory factory_{&pool_};
};

LenientPool& Lenient() {
  static LenientPool* pool = new LenientPool();  // never destroyed: used until exit
  return *pool;
}

// Walks `lenient` (a message of the lenient pool) beside the original descriptor and returns the
// path of the first string field whose bytes are not UTF-8, or "".
std::string FindBadString(const pb::Message& lenient, const pb::Descriptor* original,
                          const std::string& prefix) {
  const pb::Reflection* reflection = lenient.GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  reflection->ListFields(lenient, &fields);
  for (const pb::FieldDescriptor* field : fields) {
    const pb::FieldDescriptor* orig = original->FindFieldByNumber(field->number());
    if (orig == nullptr) continue;
    const std::string path = prefix.empty() ? field->name() : prefix + "." + field->name();
    if (orig->type() == pb::FieldDescriptor::TYPE_STRING) {
      if (field->is_repeated()) {
        for (int i = 0; i < reflection->FieldSize(lenient, field); ++i) {
          if (!IsValidUtf8(reflection->GetRepeatedString(lenient, field, i))) {
            return absl::StrCat(path, "[", i, "]");
          }
        }
      } else if (!IsValidUtf8(reflection->GetString(lenient, field))) {
        return path;
      }
    } else if (orig->type() == pb::FieldDescriptor::TYPE_MESSAGE) {
      if (field->is_repeated()) {
        for (int i = 0; i < reflection->FieldSize(lenient, field); ++i) {
          std::string bad = FindBadString(reflection->GetRepeatedMessage(lenient, field, i),
                                          orig->message_type(), absl::StrCat(path, "[", i, "]"));
          if (!bad.empty()) return bad;
        }
      } else {
        std::string bad =
            FindBadString(reflection->GetMessage(lenient, field), orig->message_type(), path);
        if (!bad.empty()) return bad;
      }
    }
  }
  return "";
}

}  // namespace

absl::Status ParseRequest(std::string_view bytes, pb::Message* out) {
  // The lenient parse comes first: protobuf's own parser logs an ERROR line for every string that
  // is not UTF-8, which would let any client write to the node's log at will. Requests are small,
  // so parsing twice costs nothing next to a generation.
  const pb::Descriptor* original = out->GetDescriptor();
  const std::string malformed =
      absl::StrCat("request: not a valid ", original->full_name(), " (malformed protobuf)");
  const int size = static_cast<int>(bytes.size());
  const pb::Descriptor* lenient_type = Lenient().Find(original);
  if (lenient_type != nullptr) {
    std::unique_ptr<pb::Message> lenient(Lenient().factory().GetPrototype(lenient_type)->New());
    if (!lenient->ParseFromArray(bytes.data(), size)) return absl::InvalidArgumentError(malformed);
    const std::string bad = FindBadString(*lenient, original, "");
    if (!bad.empty()) return absl::InvalidArgumentError(absl::StrCat(bad, ": not valid UTF-8"));
  }
  if (!out->ParseFromArray(bytes.data(), size)) return absl::InvalidArgumentError(malformed);
  return absl::OkStatus();
}

}  // namespace atoma::api
