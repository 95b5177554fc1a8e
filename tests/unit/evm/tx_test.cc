// EIP-1559 transactions: byte-exact against ethers v6 (same key, same fields: RFC 6979 makes the
// signature deterministic), decoding with sender recovery, rejections, and CREATE addresses.
#include "atoma/evm/tx.h"

#include <string>
#include <vector>

#include "atoma/evm/hex.h"
#include "atoma/evm/rlp.h"
#include "gtest/gtest.h"

namespace atoma::evm {
namespace {

std::vector<uint8_t> Bytes(std::string_view hex) { return FromHex(hex).value(); }

crypto::PrivateKey Key() {
  return crypto::PrivateKey::FromHex(
             "4646464646464646464646464646464646464646464646464646464646464646")
      .value();
}

Eip1559Tx Transfer() {
  Eip1559Tx tx;
  tx.chain_id = 31337;
  tx.nonce = 7;
  tx.max_priority_fee_per_gas = Uint256(1'000'000'000);
  tx.max_fee_per_gas = Uint256(30'000'000'000);
  tx.gas_limit = 21000;
  tx.to = ParseAddressHex("0x3535353535353535353535353535353535353535").value();
  tx.value = Uint256(1'000'000'000'000'000'000);
  tx.data = Bytes("deadbeef");
  return tx;
}

// ethers v6: Transaction.from({type: 2, ...Transfer()}) signed by Wallet(0x4646...46).
constexpr char kEthersRaw[] =
    "0x02f879827a6907843b9aca008506fc23ac00825208943535353535353535353535353535353535353535880de0"
    "b6b3a764000084deadbeefc001a01dcda9171437b6b41eee199d91a5e2f09c8c588de3f69749d19356a972db5a81"
    "a024ae7d5ee92467416487a55e966cff0e346b7c2b489be06a7049e810e5efd276";

TEST(Tx, SignMatchesEthers) {
  const Eip1559Tx tx = Transfer();
  EXPECT_EQ(ToHex(TxSigningHash(tx)),
            "0x7213ba0541ade629ccbc52dfaa7b5219bec5c26cfb2afd0af0951c45ab76e3a8");
  const std::vector<uint8_t> raw = SignTx(tx, Key());
  EXPECT_EQ(ToHex(raw), kEthersRaw);
  EXPECT_EQ(ToHex(TxHash(raw)),
            "0x7452e3fa622439a8b91b901c4b5c7d2ae401f7798804c5ae815349bfd11de99a");
}

TEST(Tx, ContractCreationMatchesEthers) {
  Eip1559Tx tx;
  tx.chain_id = 1;
  tx.gas_limit = 100000;
  tx.data = Bytes("6000");
  EXPECT_EQ(ToHex(SignTx(tx, Key())),
            "0x02f85101808080830186a08080826000c080a0618f3ba50b859382a7855645788ad324b754e2b23e04e5"
            "92c4c4d3809f4641caa00abe1784356bb2c1f1ac36e286aaa9d3708ca5fece26976365df5b083d7be0b7");
}

TEST(Tx, DecodeRecoversSender) {
  const crypto::PrivateKey key = Key();
  EXPECT_EQ(crypto::AddressToString(key.address()), "0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F");
  for (bool create : {false, true}) {
    Eip1559Tx tx = Transfer();
    if (create) tx.to.reset();
    const std::vector<uint8_t> raw = SignTx(tx, key);
    auto decoded = DecodeSignedTx(raw);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->tx, tx);
    EXPECT_EQ(decoded->from, key.address());
    EXPECT_EQ(decoded->hash, TxHash(raw));
    EXPECT_LE(decoded->y_parity, 1);
  }
  // A fresh random key too.
  auto fresh = crypto::PrivateKey::Generate().value();
  auto decoded = DecodeSignedTx(SignTx(Transfer(), fresh));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->from, fresh.address());
}

TEST(Tx, DecodeRejects) {
  const std::vector<uint8_t> raw = Bytes(kEthersRaw);
  ASSERT_TRUE(DecodeSignedTx(raw).ok());
  auto code = [](const std::vector<uint8_t>& bytes) {
    return DecodeSignedTx(bytes).status().code();
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code({}), kInvalid);
  std::vector<uint8_t> legacy = raw;
  legacy[0] = 0x01;
  EXPECT_EQ(code(legacy), kInvalid);
  std::vector<uint8_t> trailing = raw;
  trailing.push_back(0);
  EXPECT_EQ(code(trailing), kInvalid);
  EXPECT_EQ(code(std::vector<uint8_t>(raw.begin(), raw.end() - 1)), kInvalid);

  // Rebuild the fields to break one at a time.
  auto list = RlpDecode(std::span(raw).subspan(1)).value();
  auto rebuild = [](const RlpItem& l) {
    std::vector<std::vector<uint8_t>> enc;
    for (const RlpItem& it : l.items) {
      if (it.is_list) {
        std::vector<std::vector<uint8_t>> inner;
        for (const RlpItem& x : it.items) inner.push_back(RlpEncodeBytes(x.bytes));
        enc.push_back(RlpEncodeList(inner));
      } else {
        enc.push_back(RlpEncodeBytes(it.bytes));
      }
    }
    std::vector<uint8_t> out = {0x02};
    const auto body = RlpEncodeList(enc);
    out.insert(out.end(), body.begin(), body.end());
    return out;
  };
  ASSERT_EQ(rebuild(list), raw);
  {
    RlpItem l = list;
    l.items[9].bytes = {0x02};  // y_parity 2
    EXPECT_EQ(code(rebuild(l)), kInvalid);
  }
  {
    RlpItem l = list;
    l.items[5].bytes.resize(19);  // a 19-byte `to`
    EXPECT_EQ(code(rebuild(l)), kInvalid);
  }
  {
    RlpItem l = list;
    l.items[1].bytes = {0x00, 0x07};  // non-canonical nonce
    EXPECT_EQ(code(rebuild(l)), kInvalid);
  }
  {
    RlpItem l = list;
    l.items[8].items.push_back(RlpItem{});  // non-empty access list
    EXPECT_EQ(code(rebuild(l)), kInvalid);
  }
  {
    RlpItem l = list;
    l.items.pop_back();  // 11 fields
    EXPECT_EQ(code(rebuild(l)), kInvalid);
  }
  {
    // High s (n - s): the malleable twin of a valid signature.
    RlpItem l = list;
    auto s = l.items[11].AsUint().value();
    const Uint256 n =
        Uint256::FromHex("0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141")
            .value();
    Uint256 high;
    ASSERT_FALSE(SubUnderflows(n, s, &high));
    const auto be = high.ToBigEndian();
    l.items[11].bytes.assign(be.begin(), be.end());
    l.items[9].bytes = l.items[9].bytes.empty() ? std::vector<uint8_t>{1} : std::vector<uint8_t>{};
    EXPECT_EQ(code(rebuild(l)), kInvalid);
  }
  {
    // A changed field still decodes, but recovers some other sender.
    RlpItem l = list;
    l.items[1].bytes = {0x08};
    auto other = DecodeSignedTx(rebuild(l));
    if (other.ok()) {
      EXPECT_NE(other->from, Key().address());
    }
  }
}

TEST(Tx, ContractAddressVectors) {
  const auto deployer = ParseAddressHex("0x6ac7ea33f8831ea9dcc53393aaa88b25a785dbf0").value();
  EXPECT_EQ(AddressHex(ContractAddress(deployer, 0)), "0xcd234a471b72ba2f1ccf0a70fcaba648a5eecd8d");
  EXPECT_EQ(AddressHex(ContractAddress(deployer, 1)), "0x343c43a37d37dff08ae8c4a11544c718abb4fcf8");
  // ethers getCreateAddress({from, nonce: 300}): a two-byte nonce.
  EXPECT_EQ(AddressHex(ContractAddress(deployer, 300)),
            "0x47bbbb5fe97aa84c3fa30dafbb067284d250c24c");
}

}  // namespace
}  // namespace atoma::evm
