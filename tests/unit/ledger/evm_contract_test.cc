// The ledger contract's pure selectCommittee (docs/ledger_evm.md) against the checked-in
// committee vectors (tests/vectors/committee.json, from an independent implementation), called
// from C++ with eth_call on the shared Anvil chain (backends.h): the committee the contract
// recomputes at settlement is the one every node and client draws.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "atoma/evm/abi.h"
#include "atoma/evm/rpc.h"
#include "atoma/ledger/evm_ledger.h"
#include "backends.h"
#include "consensus/vectors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace atoma::ledger {
namespace {

using consensus::testing::Fixed;
using consensus::testing::Hex;
using ::testing::StartsWith;

constexpr std::string_view kSelectCommittee =
    "selectCommittee(bytes32,bytes32,address[],uint256[],uint256,uint256,uint256)";

std::vector<std::string> HexList(const evm::AbiValue& addresses) {
  std::vector<std::string> out;
  for (const evm::AbiValue& a : addresses.list()) out.push_back(Hex(a.address()));
  return out;
}

TEST(EvmContractTest, SelectCommitteeMatchesTheCommitteeVectors) {
  absl::StatusOr<test::AnvilProcess*> anvil = test::SharedAnvil();
  ASSERT_TRUE(anvil.ok()) << anvil.status();
  const crypto::PrivateKey deployer = crypto::PrivateKey::FromHex(test::kAnvilDevKey0).value();
  absl::StatusOr<Address> contract =
      DeployEvmLedger((*anvil)->url(), test::kEvmChainId, deployer, EvmDeployParams{});
  ASSERT_TRUE(contract.ok()) << contract.status();
  evm::RpcOptions rpc_options;
  rpc_options.url = (*anvil)->url();
  absl::StatusOr<std::unique_ptr<evm::RpcClient>> rpc = evm::RpcClient::MakeHttp(rpc_options);
  ASSERT_TRUE(rpc.ok()) << rpc.status();
  evm::EthClient eth(std::shared_ptr<evm::RpcClient>(std::move(*rpc)));
  const std::vector<evm::AbiType> returns(3, evm::AbiType::Array(evm::AbiType::Address()));

  const auto vectors = consensus::testing::LoadVectors("committee.json");
  ASSERT_GE(vectors.size(), 20u);
  int errors = 0;
  for (const auto& v : vectors) {
    SCOPED_TRACE(v.at("name").get<std::string>());
    // The caller sorts by address (docs/ledger_evm.md); zero stakes and duplicates go as given.
    std::vector<std::pair<Address, Uint256>> candidates;
    for (const auto& c : v.at("candidates")) {
      candidates.emplace_back(Fixed<20>(c.at("address")),
                              Uint256::FromDecimal(c.at("stake").get<std::string>()).value());
    }
    std::stable_sort(candidates.begin(), candidates.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<evm::AbiValue> addresses, stakes;
    for (const auto& [address, stake] : candidates) {
      addresses.push_back(evm::AbiValue::Address(address));
      stakes.push_back(evm::AbiValue::Uint(stake));
    }
    evm::CallRequest call;
    call.to = *contract;
    call.data = evm::EncodeCall(kSelectCommittee,
                                {evm::AbiValue::Bytes32(Fixed<32>(v.at("epoch_seed"))),
                                 evm::AbiValue::Bytes32(Fixed<32>(v.at("request_id"))),
                                 evm::AbiValue::Array(std::move(addresses)),
                                 evm::AbiValue::Array(std::move(stakes)),
                                 evm::AbiValue::Uint(Uint256(v.at("n").get<uint64_t>())),
                                 evm::AbiValue::Uint(Uint256(v.at("backups").get<uint64_t>())),
                                 evm::AbiValue::Uint(Uint256(v.at("referees").get<uint64_t>()))})
                    .value();
    const absl::StatusOr<std::vector<uint8_t>> result = eth.Call(call);
    if (v.contains("error")) {
      ++errors;
      ASSERT_FALSE(result.ok());
      const std::optional<std::vector<uint8_t>> revert = evm::RevertData(result.status());
      ASSERT_TRUE(revert.has_value()) << result.status();
      const std::optional<std::string> reason = evm::RevertErrorMessage(*revert);
      ASSERT_TRUE(reason.has_value()) << evm::DecodeRevertReason(*revert);
      EXPECT_THAT(*reason, StartsWith(v.at("error").get<std::string>() + ": "));
      continue;
    }
    ASSERT_TRUE(result.ok()) << result.status();
    const absl::StatusOr<std::vector<evm::AbiValue>> draws = evm::AbiDecode(returns, *result);
    ASSERT_TRUE(draws.ok()) << draws.status();
    EXPECT_EQ(HexList((*draws)[0]), v.at("committee").get<std::vector<std::string>>());
    EXPECT_EQ(HexList((*draws)[1]), v.at("backup_draws").get<std::vector<std::string>>());
    EXPECT_EQ(HexList((*draws)[2]), v.at("referee_draws").get<std::vector<std::string>>());
  }
  EXPECT_GE(errors, 4);
}

}  // namespace
}  // namespace atoma::ledger
