// The proto ⇄ canonical request mapping (src/api/consensus_fields.h): a round trip is the
// identity, every rejection names its field, and the client signature check.
#include "consensus_fields.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "atoma/common/uint256.h"

namespace atoma::api {
namespace {

using consensus::ConsensusRequest;
using consensus::SecurityMode;

crypto::PrivateKey Key(char last) {
  std::string hex(64, '0');
  hex[0] = 'c';
  hex[63] = last;
  return crypto::PrivateKey::FromHex(hex).value();
}

crypto::Hash256 Digest(uint8_t first) {
  crypto::Hash256 h{};
  h[0] = first;
  h[31] = 0x5a;
  return h;
}

const consensus::Domain kDomain = {31337, crypto::Address{0x5f, 0xbd, 0xb2, 0x31}};

ConsensusRequest BaseRequest(const crypto::PrivateKey& client) {
  ConsensusRequest r;
  r.model_digest = Digest(0xd1);
  r.prompt_token_ids = {1, 15043, 3186, 0};
  r.temperature_micro = 800'000;
  r.top_p_micro = 950'000;
  r.top_k = 40;
  r.max_tokens = 48;
  r.seed = 7;
  r.security = {SecurityMode::kSampling, 3, 0, 0, {}};
  r.max_fee = Uint256(52);
  r.client = client.address();
  r.client_nonce = 0xfeedbeefcafe1234ull;
  r.epoch = 5;
  return r;
}

crypto::Signature Sign(const ConsensusRequest& r, const crypto::PrivateKey& key,
                       const consensus::Domain& domain = kDomain) {
  return key.Sign(consensus::ClientRequestDigest(domain, consensus::RequestId(r)));
}

// struct → proto → serialized bytes → proto → struct, as between atoma-cli and the node.
ParsedConsensusRequest RoundTrip(const ConsensusRequest& r, const crypto::Signature& sig) {
  const v1::GenerateRequest sent = ToGenerateRequest(r, "demo", sig);
  v1::GenerateRequest received;
  EXPECT_TRUE(received.ParseFromString(sent.SerializeAsString()));
  auto parsed = ConsensusRequestFromProto(received, r.model_digest);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *parsed : ParsedConsensusRequest{};
}

TEST(ToMicro, RoundsToNearestAndRejectsNonsense) {
  EXPECT_EQ(ToMicro(0.0, "f").value(), 0u);
  EXPECT_EQ(ToMicro(-0.0, "f").value(), 0u);
  EXPECT_EQ(ToMicro(0.8, "f").value(), 800'000u);
  EXPECT_EQ(ToMicro(0.95, "f").value(), 950'000u);
  EXPECT_EQ(ToMicro(1.0, "f").value(), 1'000'000u);
  EXPECT_EQ(ToMicro(0.1234564, "f").value(), 123'456u);
  EXPECT_EQ(ToMicro(0.1234566, "f").value(), 123'457u);
  EXPECT_EQ(ToMicro(0.0000005, "f").value(), 1u);  // half rounds up
  EXPECT_EQ(ToMicro(1e12, "f").value(), 1'000'000'000'000'000'000u);
  for (double bad :
       {-1e-9, -1.0, std::nan(""), 1e12 * 1.0000001, std::numeric_limits<double>::infinity()}) {
    auto micro = ToMicro(bad, "sampling.temperature");
    ASSERT_FALSE(micro.ok()) << bad;
    EXPECT_EQ(micro.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(micro.status().message().rfind("sampling.temperature: ", 0), 0u) << micro.status();
  }
}

TEST(ConsensusFields, ProtoCarriesEveryField) {
  const crypto::PrivateKey client = Key('1');
  ConsensusRequest r = BaseRequest(client);
  r.stop_strings = {"\n\n", "END"};
  r.stop_token_ids = {2, 128001};
  r.ignore_eos = true;
  r.max_fee = Uint256::FromLimbs(0, 0, 1, 2);  // 2^64 + 2: nine significant bytes
  const crypto::Signature sig = Sign(r, client);
  const v1::GenerateRequest p = ToGenerateRequest(r, "demo", sig);
  EXPECT_EQ(p.model(), "demo");
  ASSERT_EQ(p.prompt_case(), v1::GenerateRequest::kTokenIds);
  EXPECT_EQ(std::vector<int32_t>(p.token_ids().ids().begin(), p.token_ids().ids().end()),
            (std::vector<int32_t>{1, 15043, 3186, 0}));
  EXPECT_DOUBLE_EQ(p.sampling().temperature(), 0.8);
  ASSERT_TRUE(p.sampling().has_top_p());
  EXPECT_DOUBLE_EQ(p.sampling().top_p(), 0.95);
  EXPECT_EQ(p.sampling().top_k(), 40);
  EXPECT_EQ(p.sampling().seed(), 7u);
  EXPECT_EQ(p.sampling().top_logprobs(), 0);
  EXPECT_EQ(p.max_tokens(), 48);
  ASSERT_EQ(p.stop_size(), 2);
  EXPECT_EQ(p.stop(1), "END");
  ASSERT_EQ(p.stop_token_ids_size(), 2);
  EXPECT_EQ(p.stop_token_ids(1), 128001);
  EXPECT_TRUE(p.ignore_eos());
  EXPECT_EQ(p.security().sampling().committee_size(), 3u);
  const v1::ClientAuthorization& a = p.authorization();
  EXPECT_EQ(a.client_address(), std::string(client.address().begin(), client.address().end()));
  EXPECT_EQ(a.signature(), std::string(sig.begin(), sig.end()));
  EXPECT_EQ(a.nonce(), 0xfeedbeefcafe1234ull);
  EXPECT_EQ(a.max_fee(), std::string("\x01\x00\x00\x00\x00\x00\x00\x00\x02", 9));
  EXPECT_EQ(a.epoch(), 5u);

  // top_p of exactly 1 stays unset, like a plain client's request; a zero fee keeps one byte.
  r.top_p_micro = 1'000'000;
  r.max_fee = Uint256(0);
  const v1::GenerateRequest q = ToGenerateRequest(r, "demo", sig);
  EXPECT_FALSE(q.sampling().has_top_p());
  EXPECT_EQ(q.authorization().max_fee(), std::string(1, '\0'));
}

TEST(ConsensusFields, RoundTripIsIdentity) {
  const crypto::PrivateKey client = Key('2');
  std::vector<ConsensusRequest> cases;
  ConsensusRequest r = BaseRequest(client);
  cases.push_back(r);  // temperature 0.8, top_p 0.95, top_k 40, seed 7, sampling:3
  r.temperature_micro = 0;
  r.top_p_micro = 1'000'000;
  r.top_k = 0;
  r.security.n = 1;
  cases.push_back(r);  // greedy, sampling:1, no top_p
  r.temperature_micro = 1;
  r.top_p_micro = 1;
  r.stop_strings = {"\n", "stop here", "\xe2\x82\xac"};
  r.stop_token_ids = {0, 2, 2147483647u};
  r.ignore_eos = true;
  r.security.n = consensus::kMaxCommitteeSize;
  cases.push_back(r);                 // extremes of the fixed-point values, stops, ignore_eos
  r.temperature_micro = 123'456'789;  // 123.456789
  r.top_p_micro = 999'999;
  r.max_tokens = 2147483647;
  r.seed = UINT64_MAX;
  r.max_fee = Uint256::Max();
  r.client_nonce = 0;
  r.epoch = UINT64_MAX;
  r.prompt_token_ids = {2147483647u};
  cases.push_back(r);  // maxima
  r = BaseRequest(client);
  r.security = {SecurityMode::kCrossValidation, 0, 250'000, 2, Digest(0x5a)};
  cases.push_back(r);  // cross-validation
  r.security = {SecurityMode::kCrossValidation, 0, 1'000'000, 0, Digest(0x01)};
  cases.push_back(r);
  r.security = {SecurityMode::kCrossValidation, 0, 0, consensus::kMaxCommitteeSize, Digest(0)};
  cases.push_back(r);
  // Every millionth of top_p and a sweep of temperatures survive the double round trip.
  for (uint64_t micro = 1; micro <= 1'000'000; micro += 9'973) {
    ConsensusRequest t = BaseRequest(client);
    t.top_p_micro = micro;
    t.temperature_micro = micro * 37;
    cases.push_back(t);
  }
  for (const ConsensusRequest& c : cases) {
    const crypto::Signature sig = Sign(c, client);
    const ParsedConsensusRequest parsed = RoundTrip(c, sig);
    EXPECT_EQ(parsed.request, c) << "temperature " << c.temperature_micro << " top_p "
                                 << c.top_p_micro;
    EXPECT_EQ(parsed.request_id, consensus::RequestId(c));
    EXPECT_EQ(parsed.client_signature, sig);
    EXPECT_TRUE(CheckClientAuthorization(parsed, kDomain).ok());
  }
}

// Cross-validation: p travels as a double, k and H(salt) as they are; every millionth of p
// survives the round trip (the header promises it), and the client's signature covers p, k and
// the salt hash, so a node cannot swap the salt or weaken the check of a signed request.
TEST(ConsensusFields, CrossValidationFieldsTravelAndAreSigned) {
  const crypto::PrivateKey client = Key('7');
  ConsensusRequest r = BaseRequest(client);
  r.security = {SecurityMode::kCrossValidation, 0, 250'000, 2, Digest(0x5a)};
  const crypto::Signature sig = Sign(r, client);
  const v1::GenerateRequest p = ToGenerateRequest(r, "demo", sig);
  ASSERT_EQ(p.security().level_case(), v1::Security::kCrossValidation);
  const v1::Security::CrossValidation& xv = p.security().cross_validation();
  EXPECT_DOUBLE_EQ(xv.probability(), 0.25);
  EXPECT_EQ(xv.validators(), 2u);
  EXPECT_EQ(xv.salt_hash(), std::string(r.security.salt_hash.begin(), r.security.salt_hash.end()));

  // Every probability 0, 1e-6, ..., 1 comes back as the same millionths.
  ConsensusRequest t = r;
  for (uint64_t micro = 0; micro <= 1'000'000; ++micro) {
    t.security.p_micro = micro;
    const v1::GenerateRequest q = ToGenerateRequest(t, "demo", sig);
    auto parsed = ConsensusRequestFromProto(q, t.model_digest);
    ASSERT_TRUE(parsed.ok()) << micro << ": " << parsed.status();
    ASSERT_EQ(parsed->request.security.p_micro, micro);
  }

  // A node that changes p, k or the salt hash rebuilds another request: the signature no longer
  // authorizes it.
  ASSERT_TRUE(CheckClientAuthorization(RoundTrip(r, sig), kDomain).ok());
  const struct {
    const char* what;
    void (*mutate)(v1::Security::CrossValidation&);
  } tampered[] = {
      {"probability", [](v1::Security::CrossValidation& x) { x.set_probability(0.0); }},
      {"validators", [](v1::Security::CrossValidation& x) { x.set_validators(1); }},
      {"salt_hash", [](v1::Security::CrossValidation& x) { (*x.mutable_salt_hash())[0] ^= 1; }},
  };
  for (const auto& c : tampered) {
    v1::GenerateRequest q = p;
    c.mutate(*q.mutable_security()->mutable_cross_validation());
    auto parsed = ConsensusRequestFromProto(q, r.model_digest);
    ASSERT_TRUE(parsed.ok()) << c.what << ": " << parsed.status();
    EXPECT_NE(parsed->request_id, consensus::RequestId(r)) << c.what;
    EXPECT_EQ(CheckClientAuthorization(*parsed, kDomain).code(),
              absl::StatusCode::kPermissionDenied)
        << c.what;
  }
}

TEST(ConsensusFields, ServerUsesItsOwnModelDigest) {
  const crypto::PrivateKey client = Key('3');
  const ConsensusRequest r = BaseRequest(client);
  const v1::GenerateRequest p = ToGenerateRequest(r, "demo", Sign(r, client));
  // A node serving another model rebuilds another request: the id differs and the signature no
  // longer authorizes it.
  auto other = ConsensusRequestFromProto(p, Digest(0xee));
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_NE(other->request_id, consensus::RequestId(r));
  EXPECT_EQ(CheckClientAuthorization(*other, kDomain).code(), absl::StatusCode::kPermissionDenied);
}

// Every rejection: INVALID_ARGUMENT whose message starts with the field's path.
TEST(ConsensusFields, InvalidRequestsNameTheField) {
  const crypto::PrivateKey client = Key('4');
  const ConsensusRequest r = BaseRequest(client);
  const v1::GenerateRequest good = ToGenerateRequest(r, "demo", Sign(r, client));
  ASSERT_TRUE(ConsensusRequestFromProto(good, r.model_digest).ok());

  const struct {
    const char* field;
    void (*mutate)(v1::GenerateRequest&);
  } cases[] = {
      {"security", [](v1::GenerateRequest& p) { p.clear_security(); }},
      {"security", [](v1::GenerateRequest& p) { p.mutable_security()->mutable_none(); }},
      {"security.sampling.committee_size",
       [](v1::GenerateRequest& p) {
         p.mutable_security()->mutable_sampling()->set_committee_size(0);
       }},
      {"security.sampling.committee_size",
       [](v1::GenerateRequest& p) {
         p.mutable_security()->mutable_sampling()->set_committee_size(65);
       }},
      {"security.cross_validation.probability",
       [](v1::GenerateRequest& p) {
         auto* xv = p.mutable_security()->mutable_cross_validation();
         xv->set_probability(1.5);
         xv->set_salt_hash(std::string(32, 'x'));
       }},
      {"security.cross_validation.probability",
       [](v1::GenerateRequest& p) {
         auto* xv = p.mutable_security()->mutable_cross_validation();
         xv->set_probability(-0.1);
         xv->set_salt_hash(std::string(32, 'x'));
       }},
      {"security.cross_validation.probability",
       [](v1::GenerateRequest& p) {
         auto* xv = p.mutable_security()->mutable_cross_validation();
         xv->set_probability(std::nan(""));
         xv->set_salt_hash(std::string(32, 'x'));
       }},
      {"security.cross_validation.validators",
       [](v1::GenerateRequest& p) {
         auto* xv = p.mutable_security()->mutable_cross_validation();
         xv->set_probability(0.5);
         xv->set_validators(65);
         xv->set_salt_hash(std::string(32, 'x'));
       }},
      {"security.cross_validation.salt_hash",
       [](v1::GenerateRequest& p) {
         auto* xv = p.mutable_security()->mutable_cross_validation();
         xv->set_probability(0.5);
         xv->set_salt_hash(std::string(31, 'x'));
       }},
      {"authorization", [](v1::GenerateRequest& p) { p.clear_authorization(); }},
      {"authorization.client_address",
       [](v1::GenerateRequest& p) {
         p.mutable_authorization()->set_client_address(std::string(19, 'a'));
       }},
      {"authorization.client_address",
       [](v1::GenerateRequest& p) { p.mutable_authorization()->clear_client_address(); }},
      {"authorization.signature",
       [](v1::GenerateRequest& p) {
         p.mutable_authorization()->set_signature(std::string(64, 's'));
       }},
      {"authorization.max_fee",
       [](v1::GenerateRequest& p) { p.mutable_authorization()->clear_max_fee(); }},
      {"authorization.max_fee",
       [](v1::GenerateRequest& p) {
         p.mutable_authorization()->set_max_fee(std::string(33, '\0'));
       }},
      {"token_ids", [](v1::GenerateRequest& p) { p.set_text("hello"); }},
      {"token_ids", [](v1::GenerateRequest& p) { p.mutable_chat(); }},
      {"token_ids", [](v1::GenerateRequest& p) { p.clear_token_ids(); }},
      {"token_ids.ids", [](v1::GenerateRequest& p) { p.mutable_token_ids()->clear_ids(); }},
      {"token_ids.ids[2]", [](v1::GenerateRequest& p) { p.mutable_token_ids()->set_ids(2, -1); }},
      {"max_tokens", [](v1::GenerateRequest& p) { p.clear_max_tokens(); }},
      {"max_tokens", [](v1::GenerateRequest& p) { p.set_max_tokens(0); }},
      {"max_tokens", [](v1::GenerateRequest& p) { p.set_max_tokens(-3); }},
      {"sampling.temperature",
       [](v1::GenerateRequest& p) { p.mutable_sampling()->set_temperature(-0.5); }},
      {"sampling.temperature",
       [](v1::GenerateRequest& p) { p.mutable_sampling()->set_temperature(std::nan("")); }},
      {"sampling.temperature",
       [](v1::GenerateRequest& p) { p.mutable_sampling()->set_temperature(2e12); }},
      {"sampling.top_p", [](v1::GenerateRequest& p) { p.mutable_sampling()->set_top_p(0.0); }},
      {"sampling.top_p", [](v1::GenerateRequest& p) { p.mutable_sampling()->set_top_p(1.01); }},
      {"sampling.top_p",
       [](v1::GenerateRequest& p) { p.mutable_sampling()->set_top_p(std::nan("")); }},
      {"sampling.top_p", [](v1::GenerateRequest& p) { p.mutable_sampling()->set_top_p(1e-7); }},
      {"sampling.top_k", [](v1::GenerateRequest& p) { p.mutable_sampling()->set_top_k(-1); }},
      {"stop[1]",
       [](v1::GenerateRequest& p) {
         p.add_stop("ok");
         p.add_stop("");
       }},
      {"stop[0]", [](v1::GenerateRequest& p) { p.add_stop(std::string(1025, 'x')); }},
      {"stop",
       [](v1::GenerateRequest& p) {
         for (int i = 0; i < 65; ++i) p.add_stop("s");
       }},
      {"stop_token_ids[1]",
       [](v1::GenerateRequest& p) {
         p.add_stop_token_ids(2);
         p.add_stop_token_ids(-7);
       }},
      {"stop_token_ids",
       [](v1::GenerateRequest& p) {
         for (int i = 0; i < 1025; ++i) p.add_stop_token_ids(i);
       }},
  };
  for (const auto& c : cases) {
    v1::GenerateRequest p = good;
    c.mutate(p);
    auto parsed = ConsensusRequestFromProto(p, r.model_digest);
    ASSERT_FALSE(parsed.ok()) << c.field;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << parsed.status();
    const std::string message(parsed.status().message());
    EXPECT_EQ(message.rfind(std::string(c.field) + ": ", 0), 0u)
        << "expected field " << c.field << ", got: " << message;
  }
}

TEST(ConsensusFields, ClientSignatureChecks) {
  const crypto::PrivateKey client = Key('5');
  const crypto::PrivateKey stranger = Key('6');
  const ConsensusRequest r = BaseRequest(client);

  // Good: signed by the client for this request and this ledger.
  ParsedConsensusRequest good = RoundTrip(r, Sign(r, client));
  EXPECT_TRUE(CheckClientAuthorization(good, kDomain).ok());

  // Another domain (chain id or ledger address): same request, signature worthless here.
  consensus::Domain other_chain = kDomain;
  other_chain.chain_id = 1;
  EXPECT_EQ(CheckClientAuthorization(good, other_chain).code(),
            absl::StatusCode::kPermissionDenied);
  consensus::Domain other_ledger = kDomain;
  other_ledger.ledger[19] = 0x01;
  EXPECT_EQ(CheckClientAuthorization(good, other_ledger).code(),
            absl::StatusCode::kPermissionDenied);
  const ParsedConsensusRequest signed_elsewhere = RoundTrip(r, Sign(r, client, other_chain));
  EXPECT_EQ(CheckClientAuthorization(signed_elsewhere, kDomain).code(),
            absl::StatusCode::kPermissionDenied);

  // Wrong key: a stranger signs in the client's name.
  const ParsedConsensusRequest forged = RoundTrip(r, Sign(r, stranger));
  const absl::Status forged_status = CheckClientAuthorization(forged, kDomain);
  EXPECT_EQ(forged_status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(forged_status.message().find(crypto::AddressToString(stranger.address())),
            std::string::npos)
      << forged_status;

  // Another request: the client's signature of one request does not authorize another
  // (here: a higher fee, another nonce, another epoch).
  ConsensusRequest pricier = r;
  pricier.max_fee = Uint256(53);
  EXPECT_EQ(CheckClientAuthorization(RoundTrip(pricier, Sign(r, client)), kDomain).code(),
            absl::StatusCode::kPermissionDenied);
  ConsensusRequest renonced = r;
  renonced.client_nonce += 1;
  EXPECT_EQ(CheckClientAuthorization(RoundTrip(renonced, Sign(r, client)), kDomain).code(),
            absl::StatusCode::kPermissionDenied);
  ConsensusRequest later = r;
  later.epoch += 1;
  EXPECT_EQ(CheckClientAuthorization(RoundTrip(later, Sign(r, client)), kDomain).code(),
            absl::StatusCode::kPermissionDenied);

  // A malformed signature (v not 27/28) is PERMISSION_DENIED too, never a crash.
  crypto::Signature garbage{};
  garbage[64] = 5;
  const ParsedConsensusRequest malformed = RoundTrip(r, garbage);
  EXPECT_EQ(CheckClientAuthorization(malformed, kDomain).code(),
            absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace atoma::api
