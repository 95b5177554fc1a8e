// Against a real chain (Anvil, AnvilProcess): chain id, a signed EIP-1559 value transfer and its
// receipt and balances, a contract deployed from bytecode whose reverts (Error(string), Panic,
// custom error) surface through the status and DecodeRevertReason, events through receipts and
// eth_getLogs, ABI round trips through solc's own coder, and a restart that keeps the state.
// Anvil missing is a failure naming scripts/setup.sh, not a skip.
#include "testing/anvil.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "atoma/common/status.h"
#include "atoma/evm/abi.h"
#include "atoma/evm/hex.h"
#include "atoma/evm/rpc.h"
#include "atoma/evm/tx.h"
#include "gtest/gtest.h"

namespace atoma::evm {
namespace {

// Probe, compiled once with solc-js 0.8.28 (node_modules/solc), optimizer on (200 runs):
//   node -e 'const solc=require("solc"); ... settings: {optimizer: {enabled: true, runs: 200},
//            outputSelection: {"*": {"*": ["evm.bytecode.object"]}}} ...'
//   // SPDX-License-Identifier: Apache-2.0
//   pragma solidity 0.8.28;
//
//   contract Probe {
//       event Ping(address indexed from, uint256 indexed n, string note);
//       error Custom(uint256 code);
//       uint256 public count;
//
//       function ping(uint256 n, string calldata note) external {
//           count += n;
//           emit Ping(msg.sender, n, note);
//       }
//       function fail(uint256 n) external pure returns (uint256) {
//           require(n == 0, "FAILED_PRECONDITION: n must be 0");
//           return n;
//       }
//       function overflow(uint256 n) external pure returns (uint256) { return n +
//       type(uint256).max; } function custom() external pure { revert Custom(7); } function
//       echo(bytes calldata b, uint256[] calldata xs) external pure returns (bytes memory,
//       uint256[] memory) {
//           return (b, xs);
//       }
//   }
constexpr char kProbeBytecode[] =
    "6080604052348015600e575f5ffd5b506104858061001c5f395ff3fe608060405234801561000f575f5ffd5b5060"
    "043610610060575f3560e01c806306661abd14610064578063132e4f3c1461007f578063517550bf146100925780"
    "63c231aa30146100a5578063cba2a316146100af578063fb64471d146100c2575b5f5ffd5b61006c5f5481565b60"
    "40519081526020015b60405180910390f35b61006c61008d366004610244565b6100e3565b61006c6100a0366004"
    "610244565b61013b565b6100ad61014d565b005b6100ad6100bd3660046102a0565b610169565b6100d56100d036"
    "60046102e8565b6101c1565b604051610076929190610384565b5f81156101375760405162461bcd60e51b815260"
    "206004820181905260248201527f4641494c45445f505245434f4e444954494f4e3a206e206d7573742062652030"
    "60448201526064015b60405180910390fd5b5090565b5f6101475f1983610402565b92915050565b6040516332cd"
    "8acd60e21b81526007600482015260240161012e565b825f5f8282546101799190610402565b9091555050604051"
    "839033907f70b9fa9db7248779b82f3212f84983f03b8f0b0df01c3e83a8c642df6897002a906101b49086908690"
    "610421565b60405180910390a3505050565b6060808585858583838080601f016020809104026020016040519081"
    "0160405280939291908181526020018383808284375f920191909152505060408051602080870282810182019093"
    "5286825294985095965093949386938693508392508501908490808284375f92019190915250959c929b50919950"
    "505050505050505050565b5f60208284031215610254575f5ffd5b5035919050565b5f5f83601f84011261026b57"
    "5f5ffd5b50813567ffffffffffffffff811115610282575f5ffd5b60208301915083602082850101111561029957"
    "5f5ffd5b9250929050565b5f5f5f604084860312156102b2575f5ffd5b83359250602084013567ffffffffffffff"
    "ff8111156102cf575f5ffd5b6102db8682870161025b565b9497909650939450505050565b5f5f5f5f6040858703"
    "12156102fb575f5ffd5b843567ffffffffffffffff811115610311575f5ffd5b61031d8782880161025b565b9095"
    "50935050602085013567ffffffffffffffff81111561033c575f5ffd5b8501601f8101871361034c575f5ffd5b80"
    "3567ffffffffffffffff811115610362575f5ffd5b8760208260051b8401011115610376575f5ffd5b9497939650"
    "60200194505050565b604081525f83518060408401528060208601606085015e5f60608285010152601f19601f82"
    "0116830190506060810160608483030160208501528085518083526080840191506020870193505f92505b808310"
    "156103f757835182526020820191506020840193506001830192506103d4565b509695505050505050565b808201"
    "8082111561014757634e487b7160e01b5f52601160045260245ffd5b60208152816020820152818360408301375f"
    "818301604090810191909152601f909201601f1916010191905056fea264697066735822122048166256db24784d"
    "d5141cabfc4d2927ab2d0d11273d81acd043642722a7352764736f6c634300081c0033";

const Uint256 kEther = Uint256(1'000'000'000'000'000'000);

class AnvilTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto anvil = test::AnvilProcess::Start();
    if (!anvil.ok()) {
      start_error_ = new std::string(anvil.status().ToString());
      return;
    }
    anvil_ = anvil->release();
  }
  static void TearDownTestSuite() {
    delete anvil_;
    anvil_ = nullptr;
    delete start_error_;
    start_error_ = nullptr;
  }

  void SetUp() override {
    ASSERT_EQ(start_error_, nullptr) << *start_error_;
    auto rpc = RpcClient::MakeHttp({.url = anvil_->url(), .timeout = absl::Seconds(10)});
    ASSERT_TRUE(rpc.ok()) << rpc.status();
    eth_ = std::make_unique<EthClient>(std::shared_ptr<RpcClient>(std::move(*rpc)));
  }

  // A fresh key holding `wei` on the chain.
  crypto::PrivateKey FundedKey(const Uint256& wei) {
    crypto::PrivateKey key = crypto::PrivateKey::Generate().value();
    EXPECT_TRUE(anvil_->SetBalance(key.address(), wei).ok());
    return key;
  }

  // Signs and sends; returns the mined receipt (Anvil automines; the loop only bridges the
  // moment between acceptance and mining).
  absl::StatusOr<Receipt> SendAndWait(const crypto::PrivateKey& key,
                                      std::optional<crypto::Address> to, std::vector<uint8_t> data,
                                      const Uint256& value,
                                      std::optional<uint64_t> gas = std::nullopt) {
    ASSIGN_OR_RETURN(uint64_t nonce, eth_->GetTransactionCount(key.address(), "pending"));
    ASSIGN_OR_RETURN(FeeSuggestion fees, eth_->SuggestFees());
    Eip1559Tx tx;
    tx.chain_id = 31337;
    tx.nonce = nonce;
    tx.max_priority_fee_per_gas = fees.max_priority_fee_per_gas;
    tx.max_fee_per_gas = fees.max_fee_per_gas;
    tx.to = to;
    tx.value = value;
    tx.data = std::move(data);
    if (gas) {
      tx.gas_limit = *gas;
    } else {
      ASSIGN_OR_RETURN(
          tx.gas_limit,
          eth_->EstimateGas({.from = key.address(), .to = to, .data = tx.data, .value = value}));
    }
    const std::vector<uint8_t> raw = SignTx(tx, key);
    ASSIGN_OR_RETURN(crypto::Hash256 hash, eth_->SendRawTransaction(raw));
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      ASSIGN_OR_RETURN(std::optional<Receipt> receipt, eth_->GetTransactionReceipt(hash));
      if (receipt) return *receipt;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return absl::DeadlineExceededError("no receipt");
  }

  // Deploys Probe from a fresh funded key; returns (deployer, contract).
  void Deploy(crypto::Address* deployer, crypto::Address* contract) {
    crypto::PrivateKey key = FundedKey(kEther);
    auto receipt = SendAndWait(key, std::nullopt, FromHex(kProbeBytecode).value(), Uint256(0));
    ASSERT_TRUE(receipt.ok()) << receipt.status();
    ASSERT_TRUE(receipt->status);
    ASSERT_TRUE(receipt->contract_address.has_value());
    EXPECT_EQ(*receipt->contract_address, ContractAddress(key.address(), 0));
    *deployer = key.address();
    *contract = *receipt->contract_address;
  }

  absl::StatusOr<std::vector<uint8_t>> CallProbe(const crypto::Address& probe,
                                                 std::string_view signature,
                                                 const std::vector<AbiValue>& args) {
    ASSIGN_OR_RETURN(std::vector<uint8_t> data, EncodeCall(signature, args));
    return eth_->Call({.to = probe, .data = std::move(data)});
  }

  static test::AnvilProcess* anvil_;
  static std::string* start_error_;
  std::unique_ptr<EthClient> eth_;
};

test::AnvilProcess* AnvilTest::anvil_ = nullptr;
std::string* AnvilTest::start_error_ = nullptr;

TEST_F(AnvilTest, ChainBasics) {
  EXPECT_EQ(eth_->ChainId().value(), 31337u);
  auto block = eth_->GetBlock("latest");
  ASSERT_TRUE(block.ok()) << block.status();
  ASSERT_TRUE(block->has_value());
  EXPECT_TRUE((*block)->base_fee.has_value());
  EXPECT_TRUE(eth_->BlockNumber().ok());
  EXPECT_FALSE(eth_->GetBlock(QuantityHex(uint64_t{1} << 40)).value().has_value());
  EXPECT_TRUE(eth_->GasPrice().ok());
  auto fees = eth_->SuggestFees();
  ASSERT_TRUE(fees.ok()) << fees.status();
  EXPECT_GT(fees->max_fee_per_gas, fees->max_priority_fee_per_gas);
  // An unknown method is a JSON-RPC error, reported at once.
  auto unknown = eth_->rpc().Call("atoma_noSuchMethod", nullptr);
  EXPECT_FALSE(unknown.ok());
  EXPECT_TRUE(RpcErrorOf(unknown.status()).has_value()) << unknown.status();
  EXPECT_FALSE(eth_->GetTransactionReceipt(crypto::Hash256{}).value().has_value());
}

TEST_F(AnvilTest, ValueTransfer) {
  const crypto::PrivateKey sender = FundedKey(CheckedMul(kEther, 10).value());
  const crypto::Address recipient = crypto::PrivateKey::Generate().value().address();
  EXPECT_EQ(eth_->GetBalance(sender.address()).value(), CheckedMul(kEther, 10).value());
  EXPECT_EQ(eth_->GetTransactionCount(sender.address(), "latest").value(), 0u);

  auto receipt = SendAndWait(sender, recipient, {}, kEther, 21000);
  ASSERT_TRUE(receipt.ok()) << receipt.status();
  EXPECT_TRUE(receipt->status);
  EXPECT_EQ(receipt->gas_used, 21000u);
  EXPECT_EQ(receipt->from, sender.address());
  EXPECT_EQ(receipt->to, recipient);
  EXPECT_FALSE(receipt->contract_address.has_value());
  EXPECT_TRUE(receipt->logs.empty());

  EXPECT_EQ(eth_->GetBalance(recipient).value(), kEther);
  const Uint256 fee = CheckedMul(receipt->effective_gas_price, receipt->gas_used).value();
  const Uint256 spent = CheckedAdd(kEther, fee).value();
  EXPECT_EQ(eth_->GetBalance(sender.address()).value(),
            CheckedSub(CheckedMul(kEther, 10).value(), spent).value());
  EXPECT_EQ(eth_->GetTransactionCount(sender.address(), "latest").value(), 1u);

  // Nonce 0 again: the node refuses it (nonce too low) as a JSON-RPC error, not a transport
  // failure.
  Eip1559Tx tx;
  tx.chain_id = 31337;
  tx.nonce = 0;
  tx.max_fee_per_gas = Uint256(100'000'000'000);
  tx.gas_limit = 21000;
  tx.to = recipient;
  auto replay = eth_->SendRawTransaction(SignTx(tx, sender));
  EXPECT_FALSE(replay.ok());
  EXPECT_TRUE(RpcErrorOf(replay.status()).has_value()) << replay.status();
  // A transaction for another chain id is refused too.
  tx.chain_id = 1;
  tx.nonce = 1;
  EXPECT_FALSE(eth_->SendRawTransaction(SignTx(tx, sender)).ok());
}

TEST_F(AnvilTest, ContractRevertsSurface) {
  crypto::Address deployer, probe;
  ASSERT_NO_FATAL_FAILURE(Deploy(&deployer, &probe));
  EXPECT_FALSE(eth_->GetCode(probe).value().empty());
  EXPECT_TRUE(eth_->GetCode(deployer).value().empty());

  auto ok = CallProbe(probe, "fail(uint256)", {AbiValue::Uint(0)});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(AbiDecode({AbiType::Uint()}, *ok).value()[0].uint(), Uint256(0));

  auto failed = CallProbe(probe, "fail(uint256)", {AbiValue::Uint(1)});
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kFailedPrecondition) << failed.status();
  EXPECT_TRUE(IsRevert(failed.status())) << failed.status();
  auto data = RevertData(failed.status());
  ASSERT_TRUE(data.has_value()) << failed.status();
  EXPECT_EQ(DecodeRevertReason(*data), "FAILED_PRECONDITION: n must be 0");
  EXPECT_EQ(RevertErrorMessage(*data).value(), "FAILED_PRECONDITION: n must be 0");
  EXPECT_NE(failed.status().message().find("FAILED_PRECONDITION: n must be 0"), std::string::npos)
      << failed.status();

  auto panic = CallProbe(probe, "overflow(uint256)", {AbiValue::Uint(1)});
  ASSERT_FALSE(panic.ok());
  ASSERT_TRUE(RevertData(panic.status()).has_value()) << panic.status();
  EXPECT_EQ(DecodeRevertReason(*RevertData(panic.status())), "panic 0x11 (arithmetic overflow)");
  EXPECT_NE(panic.status().message().find("panic 0x11"), std::string::npos) << panic.status();

  auto custom = CallProbe(probe, "custom()", {});
  ASSERT_FALSE(custom.ok());
  ASSERT_TRUE(RevertData(custom.status()).has_value()) << custom.status();
  EXPECT_EQ(*RevertData(custom.status()),
            EncodeCall("Custom(uint256)", {AbiValue::Uint(7)}).value());

  // eth_estimateGas reverts the same way.
  auto estimate =
      eth_->EstimateGas({.from = deployer,
                         .to = probe,
                         .data = EncodeCall("fail(uint256)", {AbiValue::Uint(2)}).value()});
  ASSERT_FALSE(estimate.ok());
  ASSERT_TRUE(RevertData(estimate.status()).has_value()) << estimate.status();
  EXPECT_EQ(RevertErrorMessage(*RevertData(estimate.status())).value(),
            "FAILED_PRECONDITION: n must be 0");
}

TEST_F(AnvilTest, RevertedTransactionHasFailedReceipt) {
  crypto::Address deployer, probe;
  ASSERT_NO_FATAL_FAILURE(Deploy(&deployer, &probe));
  crypto::PrivateKey key = FundedKey(kEther);
  auto receipt = SendAndWait(key, probe, EncodeCall("fail(uint256)", {AbiValue::Uint(1)}).value(),
                             Uint256(0), /*gas=*/100000);
  ASSERT_TRUE(receipt.ok()) << receipt.status();
  EXPECT_FALSE(receipt->status);
  EXPECT_GT(receipt->gas_used, 21000u);
}

TEST_F(AnvilTest, EventsThroughReceiptsAndGetLogs) {
  crypto::Address deployer, probe;
  ASSERT_NO_FATAL_FAILURE(Deploy(&deployer, &probe));
  crypto::PrivateKey key = FundedKey(kEther);
  auto receipt = SendAndWait(
      key, probe,
      EncodeCall("ping(uint256,string)", {AbiValue::Uint(5), AbiValue::String("hello")}).value(),
      Uint256(0));
  ASSERT_TRUE(receipt.ok()) << receipt.status();
  ASSERT_TRUE(receipt->status);
  ASSERT_EQ(receipt->logs.size(), 1u);
  const Log& log = receipt->logs[0];
  EXPECT_EQ(log.address, probe);
  ASSERT_EQ(log.topics.size(), 3u);
  EXPECT_EQ(log.topics[0], EventTopic("Ping(address,uint256,string)"));
  crypto::Hash256 sender_topic{};
  std::copy(key.address().begin(), key.address().end(), sender_topic.begin() + 12);
  EXPECT_EQ(log.topics[1], sender_topic);
  EXPECT_EQ(log.topics[2], Uint256(5).ToBigEndian());
  EXPECT_EQ(AbiDecode({AbiType::String()}, log.data).value()[0].string(), "hello");
  EXPECT_EQ(log.tx_hash, receipt->tx_hash);
  EXPECT_EQ(log.block_number, receipt->block_number);

  LogFilter filter;
  filter.addresses = {probe};
  filter.topics = {EventTopic("Ping(address,uint256,string)"), std::nullopt,
                   Uint256(5).ToBigEndian()};
  auto logs = eth_->GetLogs(filter);
  ASSERT_TRUE(logs.ok()) << logs.status();
  ASSERT_EQ(logs->size(), 1u);
  EXPECT_EQ((*logs)[0].tx_hash, receipt->tx_hash);
  EXPECT_EQ((*logs)[0].log_index, log.log_index);
  filter.topics[2] = Uint256(6).ToBigEndian();
  EXPECT_TRUE(eth_->GetLogs(filter).value().empty());
  filter.to_block = receipt->block_number - 1;  // before the event
  filter.topics = {};
  EXPECT_TRUE(eth_->GetLogs(filter).value().empty());

  auto count = CallProbe(probe, "count()", {});
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(AbiDecode({AbiType::Uint()}, *count).value()[0].AsU64().value(), 5u);
}

TEST_F(AnvilTest, AbiRoundTripsThroughSolc) {
  crypto::Address deployer, probe;
  ASSERT_NO_FATAL_FAILURE(Deploy(&deployer, &probe));
  std::vector<uint8_t> blob(100);
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<uint8_t>(i * 7);
  const std::vector<AbiValue> args = {
      AbiValue::Bytes(blob),
      AbiValue::Array({AbiValue::Uint(1), AbiValue::Uint(Uint256::Max()), AbiValue::Uint(0)})};
  auto out = CallProbe(probe, "echo(bytes,uint256[])", args);
  ASSERT_TRUE(out.ok()) << out.status();
  auto decoded = AbiDecode(ParseTypeList("bytes,uint256[]").value(), *out);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, args);
  // solc's encoder is canonical: ours gives the same bytes.
  EXPECT_EQ(AbiEncode(ParseTypeList("bytes,uint256[]").value(), args).value(), *out);
}

TEST_F(AnvilTest, OneClientFromManyThreads) {
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        auto id = eth_->ChainId();
        if (!id.ok() || *id != 31337u) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
}

TEST(AnvilProcessTest, RestartKeepsOrDropsState) {
  auto anvil = test::AnvilProcess::Start();
  ASSERT_TRUE(anvil.ok()) << anvil.status();
  EthClient eth(std::shared_ptr<RpcClient>(RpcClient::MakeHttp({.url = (*anvil)->url()}).value()));
  const crypto::Address a = crypto::PrivateKey::Generate().value().address();
  ASSERT_TRUE((*anvil)->SetBalance(a, Uint256(12345)).ok());
  ASSERT_TRUE(eth.rpc().Call("anvil_mine", nlohmann::json::array({"0x3"})).ok());
  const uint64_t height = eth.BlockNumber().value();
  const uint16_t port = (*anvil)->port();

  ASSERT_TRUE((*anvil)->Restart(/*keep_state=*/true).ok());
  EXPECT_EQ((*anvil)->port(), port);
  EXPECT_EQ(eth.GetBalance(a).value(), Uint256(12345));
  EXPECT_EQ(eth.BlockNumber().value(), height);

  ASSERT_TRUE((*anvil)->Restart(/*keep_state=*/false).ok());
  EXPECT_EQ(eth.GetBalance(a).value(), Uint256(0));
  EXPECT_EQ(eth.BlockNumber().value(), 0u);

  (*anvil)->Stop();
  EXPECT_FALSE((*anvil)->running());
  EXPECT_EQ(eth.ChainId().status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace atoma::evm
