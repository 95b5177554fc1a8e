// The embedded ledger: LedgerClient over one SQLite file shared by every node of a local network.
//
// Every call is one transaction on this object's connection: writes take the write lock up front
// (BEGIN IMMEDIATE), so two connections never interleave a read-modify-write of a balance, and a
// writer that cannot get the lock within the busy timeout fails with UNAVAILABLE having done
// nothing. Reads run in a deferred transaction so a multi-statement read sees one snapshot.
// Amounts are 32-byte big-endian blobs; all arithmetic is checked Uint256 in C++.
#include <openssl/rand.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "atoma/common/logging.h"
#include "atoma/common/status.h"
#include "atoma/consensus/attestation.h"
#include "atoma/consensus/committee.h"
#include "atoma/consensus/encoding.h"
#include "atoma/consensus/request.h"
#include "atoma/consensus/xv.h"
#include "atoma/ledger/ledger.h"
#include "batch_verify.h"
#include "sqlite_db.h"

namespace atoma::ledger {
namespace {

using storage::Db;
using storage::Stmt;

constexpr int64_t kSchemaVersion = 5;
constexpr uint64_t kMaxUnbondingEpochs = 1'000'000;

constexpr const char* kSchema = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE epochs(
  number INTEGER PRIMARY KEY,
  seed BLOB NOT NULL,
  started_unix_s INTEGER NOT NULL);
CREATE TABLE nodes(
  address BLOB PRIMARY KEY,
  endpoint TEXT NOT NULL,
  registered_epoch INTEGER NOT NULL,
  bonded BLOB NOT NULL);
CREATE TABLE node_echelons(
  address BLOB NOT NULL,
  model_digest BLOB NOT NULL,
  echelon_id BLOB NOT NULL,
  PRIMARY KEY(address, echelon_id)) WITHOUT ROWID;
CREATE TABLE unbonding(
  id INTEGER PRIMARY KEY,
  address BLOB NOT NULL,
  amount BLOB NOT NULL,
  release_epoch INTEGER NOT NULL);
CREATE INDEX unbonding_by_address ON unbonding(address, release_epoch);
CREATE TABLE frozen_stakes(
  epoch INTEGER NOT NULL,
  echelon_id BLOB NOT NULL,
  address BLOB NOT NULL,
  stake BLOB NOT NULL,
  PRIMARY KEY(epoch, echelon_id, address)) WITHOUT ROWID;
CREATE TABLE escrow(address BLOB PRIMARY KEY, balance BLOB NOT NULL);
CREATE TABLE rewards(address BLOB PRIMARY KEY, balance BLOB NOT NULL);
)sql";

// Added by schema version 2 (settlement and slashing); a version-1 file is migrated on open.
constexpr const char* kSchemaV2 = R"sql(
CREATE TABLE settlements(
  request_id BLOB PRIMARY KEY,
  request_epoch INTEGER NOT NULL,
  client BLOB NOT NULL,
  fee BLOB NOT NULL,
  submitter BLOB NOT NULL,
  settled_epoch INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE slashes(
  evidence_hash BLOB PRIMARY KEY,
  offender BLOB NOT NULL,
  request_id BLOB NOT NULL,
  reporter BLOB NOT NULL,
  slashed BLOB NOT NULL,
  reporter_reward BLOB NOT NULL,
  epoch INTEGER NOT NULL,
  UNIQUE(offender, request_id));
)sql";

// Added by schema version 3 (dispute slashing): slashes get a kind, and one node may be slashed
// once per (kind, request) — an equivocation and a lost dispute on one request are two offences;
// disputes records each settled dispute. A version-2 file is migrated on open (its slashes are
// all equivocations).
constexpr const char* kSchemaV3 = R"sql(
CREATE TABLE slashes_v3(
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  evidence_hash BLOB NOT NULL,
  offender BLOB NOT NULL,
  request_id BLOB NOT NULL,
  reporter BLOB NOT NULL,
  slashed BLOB NOT NULL,
  reporter_reward BLOB NOT NULL,
  epoch INTEGER NOT NULL,
  UNIQUE(kind, offender, request_id));
INSERT INTO slashes_v3(kind, evidence_hash, offender, request_id, reporter, slashed,
                       reporter_reward, epoch)
  SELECT 'equivocation', evidence_hash, offender, request_id, reporter, slashed, reporter_reward,
         epoch FROM slashes ORDER BY rowid;
DROP TABLE slashes;
ALTER TABLE slashes_v3 RENAME TO slashes;
CREATE INDEX slashes_by_evidence ON slashes(evidence_hash);
CREATE TABLE disputes(
  request_id BLOB PRIMARY KEY,
  request_epoch INTEGER NOT NULL,
  client BLOB NOT NULL,
  commitment BLOB NOT NULL,
  submitter BLOB NOT NULL,
  slashed_total BLOB NOT NULL,
  fee BLOB NOT NULL,
  settled_epoch INTEGER NOT NULL) WITHOUT ROWID;
)sql";

// Added by schema version 4: a (client, nonce) pair settles once, whatever request carries it, as
// on the EVM ledger (whose contract keeps one bit per pair instead of a row per request;
// docs/ledger_evm.md "Double settlement"). A version-3 file is migrated on open: its settled
// requests stay closed by their ids, and their nonces (which version 3 did not record) stay open.
constexpr const char* kSchemaV4 = R"sql(
CREATE TABLE closed_nonces(
  client BLOB NOT NULL,
  nonce INTEGER NOT NULL,
  request_id BLOB NOT NULL,
  PRIMARY KEY(client, nonce)) WITHOUT ROWID;
)sql";

// Added by schema version 5: escrow leaves in two steps (ledger.h RequestEscrowWithdrawal). One
// pending withdrawal per client; the amount stays in `escrow` until it is withdrawn. A version-4
// file is migrated on open (no withdrawal pending).
constexpr const char* kSchemaV5 = R"sql(
CREATE TABLE escrow_withdrawals(
  address BLOB PRIMARY KEY,
  amount BLOB NOT NULL,
  unlock_epoch INTEGER NOT NULL);
)sql";

constexpr const char* kEquivocation = "equivocation";
constexpr const char* kDispute = "dispute";

std::string Hex(const Address& a) { return crypto::AddressToString(a); }

absl::Status RequirePositive(const Amount& amount) {
  if (amount.IsZero()) return absl::InvalidArgumentError("amount must be positive");
  return absl::OkStatus();
}

// `a + b` or INVALID_ARGUMENT naming the balance that would overflow.
absl::StatusOr<Amount> AddOrReject(const Amount& a, const Amount& b, absl::string_view what) {
  absl::StatusOr<Amount> sum = CheckedAdd(a, b);
  if (!sum.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " would overflow 2^256-1: ", a.ToDecimal(), " + ", b.ToDecimal()));
  }
  return sum;
}

absl::StatusOr<Amount> ColumnAmount(const Stmt& stmt, int column) {
  std::array<uint8_t, 32> bytes;
  RETURN_IF_ERROR(stmt.Blob(column, &bytes));
  return Amount::FromBigEndian(bytes);
}

Hash256 NextSeed(const Hash256& previous, std::span<const uint8_t, 32> randomness) {
  crypto::Sha256 h;
  h.Update(std::string_view("atoma/epoch-seed"));
  const uint8_t zero = 0;
  h.Update(std::span<const uint8_t>(&zero, 1));
  h.Update(previous);
  h.Update(randomness);
  return h.Final();
}

absl::Status OsRandom(std::span<uint8_t> out) {
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
    return absl::UnavailableError("OS randomness unavailable (RAND_bytes failed)");
  }
  return absl::OkStatus();
}

int64_t SystemUnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class EmbeddedLedger final : public LedgerClient {
 public:
  EmbeddedLedger(std::unique_ptr<Db> db, Params params, EmbeddedLedgerOptions options)
      : db_(std::move(db)), params_(params), options_(std::move(options)) {}

  absl::StatusOr<Params> GetParams() override { return params_; }

  absl::Status RegisterNode(const Address& node, const std::string& endpoint,
                            const std::vector<EchelonRef>& echelons) override {
    RETURN_IF_ERROR(ValidateEndpoint(endpoint));
    RETURN_IF_ERROR(ValidateEchelons(echelons));
    return Write([&]() -> absl::Status {
      ASSIGN_OR_RETURN(bool exists, NodeExists(node));
      if (exists) {
        return absl::AlreadyExistsError(
            absl::StrCat("node ", Hex(node), " is already registered (use UpdateNode)"));
      }
      ASSIGN_OR_RETURN(uint64_t epoch, CurrentEpochNumber());
      const std::array<uint8_t, 32> zero{};
      Stmt insert(*db_,
                  "INSERT INTO nodes(address, endpoint, registered_epoch, bonded) "
                  "VALUES(?, ?, ?, ?)");
      insert.Bind(1, node).BindText(2, endpoint).Bind(3, static_cast<int64_t>(epoch)).Bind(4, zero);
      RETURN_IF_ERROR(insert.Run());
      return InsertEchelons(node, echelons);
    });
  }

  absl::Status UpdateNode(const Address& node, const std::string& endpoint,
                          const std::vector<EchelonRef>& echelons) override {
    RETURN_IF_ERROR(ValidateEndpoint(endpoint));
    RETURN_IF_ERROR(ValidateEchelons(echelons));
    return Write([&]() -> absl::Status {
      RETURN_IF_ERROR(RequireNode(node));
      Stmt update(*db_, "UPDATE nodes SET endpoint = ? WHERE address = ?");
      update.BindText(1, endpoint).Bind(2, node);
      RETURN_IF_ERROR(update.Run());
      Stmt remove(*db_, "DELETE FROM node_echelons WHERE address = ?");
      remove.Bind(1, node);
      RETURN_IF_ERROR(remove.Run());
      return InsertEchelons(node, echelons);
    });
  }

  absl::StatusOr<NodeInfo> GetNode(const Address& node) override {
    NodeInfo info;
    const absl::Status status = Read([&]() -> absl::Status {
      Stmt select(*db_, "SELECT endpoint, registered_epoch FROM nodes WHERE address = ?");
      select.Bind(1, node);
      ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) return NotRegistered(node);
      info.address = node;
      info.endpoint = select.Text(0);
      info.registered_epoch = static_cast<uint64_t>(select.Int(1));
      Stmt echelons(*db_,
                    "SELECT model_digest, echelon_id FROM node_echelons WHERE address = ? "
                    "ORDER BY echelon_id");
      echelons.Bind(1, node);
      while (true) {
        ASSIGN_OR_RETURN(bool more, echelons.Step());
        if (!more) break;
        EchelonRef ref;
        RETURN_IF_ERROR(echelons.Blob(0, &ref.model_digest));
        RETURN_IF_ERROR(echelons.Blob(1, &ref.echelon_id));
        info.echelons.push_back(ref);
      }
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return info;
  }

  absl::StatusOr<std::vector<Address>> ListNodes() override {
    std::vector<Address> nodes;
    const absl::Status status = Read([&]() -> absl::Status {
      Stmt select(*db_, "SELECT address FROM nodes ORDER BY address");
      while (true) {
        ASSIGN_OR_RETURN(bool more, select.Step());
        if (!more) return absl::OkStatus();
        RETURN_IF_ERROR(select.Blob(0, &nodes.emplace_back()));
      }
    });
    if (!status.ok()) return status;
    return nodes;
  }

  absl::StatusOr<std::vector<Hash256>> SnapshotEchelons(uint64_t epoch) override {
    std::vector<Hash256> echelons;
    const absl::Status status = Read([&]() -> absl::Status {
      RETURN_IF_ERROR(LoadEpoch(epoch).status());
      Stmt select(*db_,
                  "SELECT DISTINCT echelon_id FROM frozen_stakes WHERE epoch = ? "
                  "ORDER BY echelon_id");
      select.Bind(1, static_cast<int64_t>(epoch));
      while (true) {
        ASSIGN_OR_RETURN(bool more, select.Step());
        if (!more) return absl::OkStatus();
        RETURN_IF_ERROR(select.Blob(0, &echelons.emplace_back()));
      }
    });
    if (!status.ok()) return status;
    return echelons;
  }

  absl::StatusOr<std::vector<SettlementRecord>> ListSettlements(size_t limit) override {
    std::vector<SettlementRecord> records;
    const absl::Status status = Read([&]() -> absl::Status {
      // Newest first with the limit, reversed below.
      Stmt select(*db_,
                  "SELECT request_id, request_epoch, client, fee, submitter, settled_epoch "
                  "FROM settlements ORDER BY settled_epoch DESC, request_id DESC LIMIT ?");
      select.Bind(1, limit == 0 ? int64_t{-1} : static_cast<int64_t>(limit));
      while (true) {
        ASSIGN_OR_RETURN(bool more, select.Step());
        if (!more) return absl::OkStatus();
        SettlementRecord& r = records.emplace_back();
        RETURN_IF_ERROR(select.Blob(0, &r.request_id));
        r.request_epoch = static_cast<uint64_t>(select.Int(1));
        RETURN_IF_ERROR(select.Blob(2, &r.client));
        ASSIGN_OR_RETURN(r.fee, ColumnAmount(select, 3));
        RETURN_IF_ERROR(select.Blob(4, &r.submitter));
        r.settled_epoch = static_cast<uint64_t>(select.Int(5));
      }
    });
    if (!status.ok()) return status;
    std::reverse(records.begin(), records.end());
    return records;
  }

  absl::StatusOr<std::vector<SlashRecord>> ListSlashings(size_t limit) override {
    std::vector<SlashRecord> records;
    const absl::Status status = Read([&]() -> absl::Status {
      Stmt select(*db_,
                  "SELECT evidence_hash, offender, request_id, reporter, slashed, "
                  "reporter_reward, epoch, kind FROM slashes ORDER BY id DESC LIMIT ?");
      select.Bind(1, limit == 0 ? int64_t{-1} : static_cast<int64_t>(limit));
      while (true) {
        ASSIGN_OR_RETURN(bool more, select.Step());
        if (!more) return absl::OkStatus();
        SlashRecord& r = records.emplace_back();
        RETURN_IF_ERROR(select.Blob(0, &r.evidence_hash));
        RETURN_IF_ERROR(select.Blob(1, &r.offender));
        RETURN_IF_ERROR(select.Blob(2, &r.request_id));
        RETURN_IF_ERROR(select.Blob(3, &r.reporter));
        ASSIGN_OR_RETURN(r.slashed, ColumnAmount(select, 4));
        ASSIGN_OR_RETURN(r.reporter_reward, ColumnAmount(select, 5));
        r.epoch = static_cast<uint64_t>(select.Int(6));
        r.kind = select.Text(7);
      }
    });
    if (!status.ok()) return status;
    std::reverse(records.begin(), records.end());
    return records;
  }

  absl::Status Stake(const Address& node, const Amount& amount) override {
    RETURN_IF_ERROR(RequirePositive(amount));
    return Write([&]() -> absl::Status {
      ASSIGN_OR_RETURN(Amount bonded, Bonded(node));
      ASSIGN_OR_RETURN(Amount bonded_after, AddOrReject(bonded, amount, "bonded stake"));
      // A node's whole stake (bonded + unbonding) must fit in a uint256, so that every total
      // reported by GetStake is exact.
      ASSIGN_OR_RETURN(std::vector<Entry> entries, Unbonding(node));
      Amount total = bonded_after;
      for (const Entry& e : entries) {
        ASSIGN_OR_RETURN(total, AddOrReject(total, e.amount, "total stake of the node"));
      }
      return SetBonded(node, bonded_after);
    });
  }

  absl::Status Unstake(const Address& node, const Amount& amount) override {
    RETURN_IF_ERROR(RequirePositive(amount));
    return Write([&]() -> absl::Status {
      ASSIGN_OR_RETURN(Amount bonded, Bonded(node));
      if (bonded < amount) {
        return absl::FailedPreconditionError(absl::StrCat("cannot unstake ", amount.ToDecimal(),
                                                          ": node ", Hex(node), " has only ",
                                                          bonded.ToDecimal(), " bonded"));
      }
      ASSIGN_OR_RETURN(Amount rest, CheckedSub(bonded, amount));
      RETURN_IF_ERROR(SetBonded(node, rest));
      ASSIGN_OR_RETURN(uint64_t epoch, CurrentEpochNumber());
      Stmt insert(*db_, "INSERT INTO unbonding(address, amount, release_epoch) VALUES(?, ?, ?)");
      insert.Bind(1, node)
          .Bind(2, amount.ToBigEndian())
          .Bind(3, static_cast<int64_t>(epoch + params_.unbonding_epochs));
      return insert.Run();
    });
  }

  absl::StatusOr<StakeInfo> GetStake(const Address& node) override {
    StakeInfo info;
    const absl::Status status = Read([&]() -> absl::Status {
      ASSIGN_OR_RETURN(info.bonded, Bonded(node));
      ASSIGN_OR_RETURN(uint64_t epoch, CurrentEpochNumber());
      ASSIGN_OR_RETURN(std::vector<Entry> entries, Unbonding(node));
      for (const Entry& e : entries) {
        if (e.release_epoch <= epoch) {
          ASSIGN_OR_RETURN(info.withdrawable, CheckedAdd(info.withdrawable, e.amount));
        } else {
          info.unbonding.push_back({e.amount, e.release_epoch});
        }
      }
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return info;
  }

  absl::Status WithdrawStake(const Address& node, const Amount& amount) override {
    RETURN_IF_ERROR(RequirePositive(amount));
    return Write([&]() -> absl::Status {
      RETURN_IF_ERROR(RequireNode(node));
      ASSIGN_OR_RETURN(uint64_t epoch, CurrentEpochNumber());
      ASSIGN_OR_RETURN(std::vector<Entry> entries, Unbonding(node));
      Amount available;
      for (const Entry& e : entries) {
        if (e.release_epoch <= epoch) {
          ASSIGN_OR_RETURN(available, CheckedAdd(available, e.amount));
        }
      }
      if (available < amount) {
        return absl::FailedPreconditionError(
            absl::StrCat("cannot withdraw ", amount.ToDecimal(), " of stake: node ", Hex(node),
                         " has ", available.ToDecimal(), " released (unbonding lasts ",
                         params_.unbonding_epochs, " epochs; current epoch ", epoch, ")"));
      }
      // Consume released entries oldest first.
      Amount left = amount;
      for (const Entry& e : entries) {
        if (left.IsZero()) break;
        if (e.release_epoch > epoch) continue;
        if (e.amount <= left) {
          ASSIGN_OR_RETURN(left, CheckedSub(left, e.amount));
          Stmt remove(*db_, "DELETE FROM unbonding WHERE id = ?");
          remove.Bind(1, e.id);
          RETURN_IF_ERROR(remove.Run());
        } else {
          ASSIGN_OR_RETURN(Amount rest, CheckedSub(e.amount, left));
          left = 0;
          Stmt update(*db_, "UPDATE unbonding SET amount = ? WHERE id = ?");
          update.Bind(1, rest.ToBigEndian()).Bind(2, e.id);
          RETURN_IF_ERROR(update.Run());
        }
      }
      return absl::OkStatus();
    });
  }

  absl::StatusOr<Epoch> CurrentEpoch() override {
    Epoch epoch;
    const absl::Status status = Read([&]() -> absl::Status {
      ASSIGN_OR_RETURN(uint64_t number, CurrentEpochNumber());
      ASSIGN_OR_RETURN(epoch, LoadEpoch(number));
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return epoch;
  }

  absl::StatusOr<Epoch> GetEpoch(uint64_t number) override {
    Epoch epoch;
    const absl::Status status = Read([&]() -> absl::Status {
      ASSIGN_OR_RETURN(epoch, LoadEpoch(number));
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return epoch;
  }

  absl::StatusOr<Epoch> AdvanceEpoch() override { return Advance(std::nullopt); }

  absl::StatusOr<Epoch> AdvanceEpochFrom(uint64_t current) override { return Advance(current); }

  absl::StatusOr<std::vector<Candidate>> EchelonSnapshot(uint64_t epoch,
                                                         const Hash256& echelon_id) override {
    std::vector<Candidate> candidates;
    const absl::Status status = Read([&]() -> absl::Status {
      RETURN_IF_ERROR(LoadEpoch(epoch).status());
      ASSIGN_OR_RETURN(candidates, LoadSnapshot(epoch, echelon_id));
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return candidates;
  }

  absl::Status DepositEscrow(const Address& client, const Amount& amount) override {
    return Credit("escrow", client, amount, "escrow balance");
  }
  absl::StatusOr<Amount> EscrowBalance(const Address& client) override {
    return Balance("escrow", client);
  }
  absl::StatusOr<EscrowInfo> EscrowStatus(const Address& client) override {
    EscrowInfo info;
    RETURN_IF_ERROR(Read([&]() -> absl::Status {
      ASSIGN_OR_RETURN(uint64_t current, CurrentEpochNumber());
      ASSIGN_OR_RETURN(info, LoadEscrow(client, current));
      return absl::OkStatus();
    }));
    return info;
  }

  absl::Status RequestEscrowWithdrawal(const Address& client, const Amount& amount) override {
    RETURN_IF_ERROR(RequirePositive(amount));
    return Write([&]() -> absl::Status {
      ASSIGN_OR_RETURN(Amount balance, LoadBalance("escrow", client));
      if (balance < amount) {
        return absl::FailedPreconditionError(
            absl::StrCat("cannot request a withdrawal of ", amount.ToDecimal(), ": the escrow of ",
                         Hex(client), " holds ", balance.ToDecimal()));
      }
      ASSIGN_OR_RETURN(uint64_t current, CurrentEpochNumber());
      // A second request replaces the first (amount and unlock epoch).
      Stmt upsert(*db_,
                  "INSERT INTO escrow_withdrawals(address, amount, unlock_epoch) VALUES(?, ?, ?) "
                  "ON CONFLICT(address) DO UPDATE SET amount = excluded.amount, "
                  "unlock_epoch = excluded.unlock_epoch");
      upsert.Bind(1, client)
          .Bind(2, amount.ToBigEndian())
          .Bind(3, static_cast<int64_t>(current + params_.unbonding_epochs));
      return upsert.Run();
    });
  }

  absl::Status WithdrawEscrow(const Address& client, const Amount& amount) override {
    RETURN_IF_ERROR(RequirePositive(amount));
    return Write([&]() -> absl::Status {
      ASSIGN_OR_RETURN(uint64_t current, CurrentEpochNumber());
      ASSIGN_OR_RETURN(EscrowInfo escrow, LoadEscrow(client, current));
      RETURN_IF_ERROR(CheckEscrowWithdrawal(client, escrow, amount, current));
      ASSIGN_OR_RETURN(Amount balance_after, CheckedSub(escrow.balance, amount));
      RETURN_IF_ERROR(StoreBalance("escrow", client, balance_after));
      // What settlement took from the pending amount is dropped with what is paid out now.
      ASSIGN_OR_RETURN(Amount pending_after, CheckedSub(escrow.withdrawable, amount));
      if (pending_after.IsZero()) {
        Stmt remove(*db_, "DELETE FROM escrow_withdrawals WHERE address = ?");
        remove.Bind(1, client);
        return remove.Run();
      }
      Stmt update(*db_, "UPDATE escrow_withdrawals SET amount = ? WHERE address = ?");
      update.Bind(1, pending_after.ToBigEndian()).Bind(2, client);
      return update.Run();
    });
  }

  absl::StatusOr<Amount> RewardBalance(const Address& node) override {
    return Balance("rewards", node);
  }
  absl::Status WithdrawRewards(const Address& node, const Amount& amount) override {
    return Debit("rewards", node, amount, "reward balance");
  }

  absl::StatusOr<std::vector<SettlementResult>> SettleCertificates(
      const Address& submitter, std::span<const SettlementItem> items) override {
    if (items.size() > kMaxSettlementBatch) {
      return absl::InvalidArgumentError(absl::StrCat(
          "at most ", kMaxSettlementBatch, " certificates per batch, got ", items.size()));
    }
    std::vector<SettlementResult> results(items.size());
    // 1. Load the verification inputs. Seeds and snapshots never change once an epoch is open,
    //    so reading them in their own transaction and verifying without the write lock is safe.
    BatchVerifier verifier(params_.domain, items, results);
    const absl::Status loaded = Read([&]() -> absl::Status {
      return verifier.Load(
          [&](uint64_t epoch) { return LoadEpoch(epoch); },
          [&](uint64_t epoch, const Hash256& echelon) { return LoadSnapshot(epoch, echelon); });
    });
    if (!loaded.ok()) return loaded;
    // 2. Verify (signature recovery is the expensive part; no lock held).
    const std::vector<bool> verified = verifier.Verify();
    // 3. Apply, one savepoint per item so a rejected item leaves no trace.
    const absl::Status applied = Write([&]() -> absl::Status {
      ASSIGN_OR_RETURN(uint64_t current, CurrentEpochNumber());
      for (size_t i = 0; i < items.size(); ++i) {
        if (!verified[i]) continue;
        RETURN_IF_ERROR(db_->Exec("SAVEPOINT item"));
        absl::Status item = SettleOne(submitter, items[i], current, results[i]);
        if (IsStorageError(item)) return item;  // the whole batch rolls back
        if (!item.ok()) {
          RETURN_IF_ERROR(db_->Exec("ROLLBACK TO item"));
          results[i].status = item;
        }
        RETURN_IF_ERROR(db_->Exec("RELEASE item"));
      }
      return absl::OkStatus();
    });
    if (!applied.ok()) return applied;
    size_t settled = 0;
    for (const SettlementResult& r : results) settled += r.status.ok() ? 1 : 0;
    GetLogger("ledger")->info("settled {} of {} certificates submitted by {}", settled,
                              items.size(), Hex(submitter));
    return results;
  }

  absl::StatusOr<bool> IsNonceSettled(const Address& client, uint64_t nonce) override {
    std::optional<Hash256> closed_by;
    RETURN_IF_ERROR(Read([&]() -> absl::Status {
      ASSIGN_OR_RETURN(closed_by, NonceClosedBy(client, nonce));
      return absl::OkStatus();
    }));
    return closed_by.has_value();
  }

  absl::StatusOr<bool> IsSettled(const Hash256& request_id) override {
    bool settled = false;
    const absl::Status status = Read([&]() -> absl::Status {
      ASSIGN_OR_RETURN(settled, Settled(request_id));
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return settled;
  }

  absl::StatusOr<SlashResult> ReportEquivocation(const Address& reporter,
                                                 const consensus::Attestation& a,
                                                 const consensus::Attestation& b) override {
    if (a.member != b.member) {
      return absl::InvalidArgumentError(absl::StrCat("not equivocation: attestations by ",
                                                     Hex(a.member), " and ", Hex(b.member)));
    }
    if (a.request_id != b.request_id) {
      return absl::InvalidArgumentError(absl::StrCat("not equivocation: attestations for requests ",
                                                     crypto::ToHex(a.request_id), " and ",
                                                     crypto::ToHex(b.request_id)));
    }
    const Hash256 digest_a = consensus::AttestationDigest(a);
    const Hash256 digest_b = consensus::AttestationDigest(b);
    if (digest_a == digest_b) {
      // Same signed content (perhaps two signatures over it): the node said one thing.
      return absl::InvalidArgumentError(
          "not equivocation: both attestations sign the same content");
    }
    if (consensus::SameOutputClaim(a, b)) {
      // An honest member re-attests with a new C when a backup replaces a timed-out peer (the
      // round's view update); slashing that would punish the protocol working as designed.
      return absl::InvalidArgumentError(
          "not equivocation: a view update (same output, another committee)");
    }
    // The epoch check of VerifyAttestation is about freshness; for evidence any epoch the node
    // signed counts, so each attestation is checked against its own epoch.
    RETURN_IF_ERROR(consensus::VerifyAttestation(a, params_.domain, a.epoch));
    RETURN_IF_ERROR(consensus::VerifyAttestation(b, params_.domain, b.epoch));
    // Order-independent, so the swapped pair is the same evidence.
    consensus::Encoder evidence;
    evidence.Hash(std::min(digest_a, digest_b)).Hash(std::max(digest_a, digest_b));
    SlashResult result;
    result.offender = a.member;
    result.evidence_hash = consensus::TaggedHash("atoma/equivocation", evidence);
    const absl::Status status = Write([&]() -> absl::Status {
      RETURN_IF_ERROR(RequireNode(a.member));
      Stmt seen(*db_,
                "SELECT 1 FROM slashes WHERE kind = ? AND (evidence_hash = ? OR "
                "(offender = ? AND request_id = ?))");
      seen.BindText(1, kEquivocation)
          .Bind(2, result.evidence_hash)
          .Bind(3, a.member)
          .Bind(4, a.request_id);
      ASSIGN_OR_RETURN(bool slashed_before, seen.Step());
      if (slashed_before) {
        return absl::AlreadyExistsError(absl::StrCat(
            "node ", Hex(a.member), " was already slashed for equivocating on request ",
            crypto::ToHex(a.request_id)));
      }
      ASSIGN_OR_RETURN(uint64_t current, CurrentEpochNumber());
      ASSIGN_OR_RETURN(result.slashed, SlashStake(a.member, current));
      ASSIGN_OR_RETURN(result.reporter_reward,
                       BasisPointsOf(result.slashed, params_.reporter_share_bps));
      if (!result.reporter_reward.IsZero()) {
        ASSIGN_OR_RETURN(Amount balance, LoadBalance("rewards", reporter));
        ASSIGN_OR_RETURN(Amount after,
                         AddOrReject(balance, result.reporter_reward, "reward balance"));
        RETURN_IF_ERROR(StoreBalance("rewards", reporter, after));
      }
      return InsertSlash(kEquivocation, result.evidence_hash, a.member, a.request_id, reporter,
                         result.slashed, result.reporter_reward, current);
    });
    if (!status.ok()) return status;
    GetLogger("ledger")->warn("equivocation by {} on request {}: slashed {}, reporter {} gets {}",
                              Hex(result.offender), crypto::ToHex(a.request_id),
                              result.slashed.ToDecimal(), Hex(reporter),
                              result.reporter_reward.ToDecimal());
    return result;
  }

  absl::StatusOr<DisputeResult> SettleDispute(const Address& submitter,
                                              const DisputeEvidence& ev) override {
    const consensus::ConsensusRequest& request = ev.request;
    // Cross-validation (xv.h): a committee of one, the executor; validators that attested follow
    // its attestation in member_attestations, and the dispute referees are the draws after them.
    const bool xv = request.security.mode == consensus::SecurityMode::kCrossValidation;
    const uint64_t k = xv ? request.security.k : 0;
    // Structure first: bounds every loop below before any signature is recovered.
    RETURN_IF_ERROR(CheckDisputeForm(ev));
    DisputeResult result;
    result.request_id = consensus::RequestId(request);
    const Hash256& id = result.request_id;
    const Hash256 echelon_id = ev.member_attestations[0].echelon_id;

    // 1. The epoch's seed and the echelon's frozen snapshot (they never change once the epoch is
    //    open, so verifying outside the write transaction is safe, as in SettleCertificates).
    Hash256 seed{};
    std::vector<consensus::Candidate> registry;
    RETURN_IF_ERROR(Read([&]() -> absl::Status {
      ASSIGN_OR_RETURN(Epoch epoch, LoadEpoch(request.epoch));
      seed = epoch.seed;
      ASSIGN_OR_RETURN(std::vector<Candidate> snapshot, LoadSnapshot(request.epoch, echelon_id));
      for (const Candidate& c : snapshot) registry.push_back({c.address, c.stake});
      return absl::OkStatus();
    }));

    // 2. The client authorized this request (else anyone could invent a dispute to charge it).
    RETURN_IF_ERROR(consensus::VerifyClientSignature(params_.domain, request, ev.client_signature));

    // 3. The committee is a view of the draws; the referees are the draws after the backups
    //    (cross-validation: after the backups and the k validators).
    const uint64_t n = consensus::CommitteeSize(request.security);
    absl::StatusOr<consensus::CommitteeDraws> draws =
        consensus::SelectCommittee(seed, id, registry, n, consensus::BackupCount(n),
                                   xv ? consensus::XvRefereeDraws(k) : consensus::RefereeCount(n));
    if (!draws.ok()) {
      return absl::PermissionDeniedError(absl::StrCat(
          "cannot draw a committee of ", n, " from epoch ", request.epoch,
          "'s snapshot of echelon ", crypto::ToHex(echelon_id), ": ", draws.status().message()));
    }
    if (absl::Status view = consensus::CheckCommitteeView(*draws, ev.committee); !view.ok()) {
      return absl::PermissionDeniedError(
          absl::StrCat("not the committee of this request: ", view.message()));
    }
    consensus::XvDraws roles;
    if (xv) {
      roles = consensus::SplitXvDraws(*draws, k);
    } else {
      roles.referees = draws->referees;
    }

    // 4. Every attestation: the right signer, request, echelon, domain and epoch.
    auto check = [&](const consensus::Attestation& a, const std::string& who) -> absl::Status {
      if (a.request_id != id) {
        return absl::PermissionDeniedError(absl::StrCat(who, ": attests another request"));
      }
      if (a.echelon_id != echelon_id) {
        return absl::PermissionDeniedError(absl::StrCat(who, ": names another echelon"));
      }
      if (absl::Status s = consensus::VerifyAttestation(a, params_.domain, request.epoch);
          !s.ok()) {
        return absl::PermissionDeniedError(absl::StrCat(who, ": ", s.message()));
      }
      return absl::OkStatus();
    };
    // The judged attestations: the committee's in committee order, then (cross-validation) the
    // validators' in draw order, whatever order the submitter listed them in, so that the reward
    // order (and who gets the remainder) is the protocol's.
    std::vector<const consensus::Attestation*> judged;
    for (size_t i = 0; i < n; ++i) {
      const consensus::Attestation& a = ev.member_attestations[i];
      const std::string who = absl::StrCat(xv ? "executor" : "member ", xv ? "" : absl::StrCat(i),
                                           " (", Hex(ev.committee[i]), ")");
      if (a.member != ev.committee[i]) {
        return absl::PermissionDeniedError(
            absl::StrCat(who, ": the attestation is by ", Hex(a.member)));
      }
      RETURN_IF_ERROR(check(a, who));
      judged.push_back(&a);
    }
    std::vector<const consensus::Attestation*> by_validator(roles.validators.size(), nullptr);
    for (size_t i = n; i < ev.member_attestations.size(); ++i) {
      const consensus::Attestation& a = ev.member_attestations[i];
      const std::string who = absl::StrCat("validator ", Hex(a.member));
      const auto it = std::find(roles.validators.begin(), roles.validators.end(), a.member);
      if (it == roles.validators.end()) {
        return absl::PermissionDeniedError(
            absl::StrCat(who, ": not drawn as a validator of this request"));
      }
      const size_t v = static_cast<size_t>(it - roles.validators.begin());
      if (by_validator[v] != nullptr) {
        return absl::PermissionDeniedError(absl::StrCat(who, ": attests twice"));
      }
      RETURN_IF_ERROR(check(a, who));
      by_validator[v] = &a;
    }
    for (const consensus::Attestation* a : by_validator) {
      if (a != nullptr) judged.push_back(a);
    }
    const std::vector<Address>& referees = roles.referees;
    std::vector<const consensus::Attestation*> by_referee(referees.size(), nullptr);
    for (const consensus::Attestation& a : ev.referee_attestations) {
      const std::string who = absl::StrCat("referee ", Hex(a.member));
      const auto it = std::find(referees.begin(), referees.end(), a.member);
      if (it == referees.end()) {
        return absl::PermissionDeniedError(
            absl::StrCat(who, ": not drawn as a referee of this request"));
      }
      const size_t r = static_cast<size_t>(it - referees.begin());
      if (by_referee[r] != nullptr) {
        return absl::PermissionDeniedError(absl::StrCat(who, ": attests twice"));
      }
      RETURN_IF_ERROR(check(a, who));
      by_referee[r] = &a;
    }

    // 5. A strict majority of all drawn referees (a silent referee counts against every C).
    const size_t m = referees.size();
    std::map<Hash256, size_t> votes;
    for (const consensus::Attestation* a : by_referee) {
      if (a != nullptr) ++votes[a->commitment];
    }
    std::optional<Hash256> winner;
    size_t best = 0;
    for (const auto& [c, count] : votes) {
      if (2 * count > m) winner = c;
      best = std::max(best, count);
    }
    if (!winner.has_value()) {
      return absl::FailedPreconditionError(
          absl::StrCat("no strict majority: the best C has ", best, " of ", m, " referees"));
    }
    result.commitment = *winner;

    // 6. Losers: another C, or (with the output) a p that is not the output's for the signer's
    //    own address (a member's p_i; a validator's p for itself, like a referee's).
    if (ev.output.has_value() &&
        consensus::Commitment(consensus::OutputProofs(id, *ev.output, ev.committee)) != *winner) {
      return absl::InvalidArgumentError(
          "the output's commitment for this committee is not the referees' majority C");
    }
    for (const consensus::Attestation* a : judged) {
      const bool lazy =
          ev.output.has_value() && a->proof != consensus::OutputProof(id, *ev.output, a->member);
      (a->commitment != *winner || lazy ? result.slashed : result.rewarded).push_back(a->member);
    }
    if (result.slashed.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "nothing to slash: every member attested the majority's C",
          ev.output.has_value() ? " with its own proof"
                                : " (with the output, a member that copied C can be found)"));
    }
    const consensus::Attestation* first_majority = nullptr;
    for (const consensus::Attestation* a : by_referee) {
      if (a == nullptr || a->commitment != *winner) continue;
      if (first_majority == nullptr) first_majority = a;
      result.rewarded.push_back(a->member);
    }
    // The tokens the fee is for: the output's when given, else what the first majority referee
    // (draw order, so the submitter's ordering cannot pick) attested.
    std::optional<uint64_t> tokens;
    if (ev.output.has_value()) {
      tokens = request.prompt_token_ids.size() + ev.output->token_ids.size();
    } else if (first_majority->prompt_tokens <= UINT64_MAX - first_majority->completion_tokens) {
      tokens = first_majority->prompt_tokens + first_majority->completion_tokens;
    }

    // 7. Effects, in one write transaction.
    consensus::Encoder evidence;
    evidence.Hash(id).Hash(*winner);
    const Hash256 evidence_hash = consensus::TaggedHash("atoma/dispute", evidence);
    const absl::Status status = Write([&]() -> absl::Status {
      ASSIGN_OR_RETURN(bool disputed, DisputeSettled(id));
      if (disputed) {
        return absl::AlreadyExistsError(
            absl::StrCat("a dispute for request ", crypto::ToHex(id), " was already settled"));
      }
      ASSIGN_OR_RETURN(bool settled, CertificateSettled(id));
      if (settled) {
        return absl::AlreadyExistsError(
            absl::StrCat("request ", crypto::ToHex(id), " was already settled by a certificate"));
      }
      RETURN_IF_ERROR(CheckNonceOpen(request, id));
      ASSIGN_OR_RETURN(uint64_t current, CurrentEpochNumber());
      result.slashed_total = Amount();
      for (const Address& loser : result.slashed) {
        ASSIGN_OR_RETURN(Amount slashed, SlashStake(loser, current));
        // Each slash is at most the node's stake, and Stake() keeps each node's stake within a
        // uint256, but the sum over nodes may not fit: reject rather than wrap.
        ASSIGN_OR_RETURN(result.slashed_total,
                         AddOrReject(result.slashed_total, slashed, "slashed total"));
        RETURN_IF_ERROR(
            InsertSlash(kDispute, evidence_hash, loser, id, submitter, slashed, Amount(), current));
      }
      result.fee = Amount();
      ASSIGN_OR_RETURN(result.fee_note, ChargeDisputeFee(request, tokens, result.fee));
      ASSIGN_OR_RETURN(Amount pool, AddOrReject(result.slashed_total, result.fee, "reward pool"));
      RETURN_IF_ERROR(ShareRewards(pool, result.rewarded));
      Stmt insert(*db_,
                  "INSERT INTO disputes(request_id, request_epoch, client, commitment, submitter, "
                  "slashed_total, fee, settled_epoch) VALUES(?, ?, ?, ?, ?, ?, ?, ?)");
      insert.Bind(1, id)
          .Bind(2, static_cast<int64_t>(request.epoch))
          .Bind(3, request.client)
          .Bind(4, *winner)
          .Bind(5, submitter)
          .Bind(6, result.slashed_total.ToBigEndian())
          .Bind(7, result.fee.ToBigEndian())
          .Bind(8, static_cast<int64_t>(current));
      RETURN_IF_ERROR(insert.Run());
      return CloseNonce(request, id);
    });
    if (!status.ok()) return status;
    GetLogger("ledger")->warn(
        "dispute on request {} settled by {}: {} member(s) slashed {} in total, fee {}{}, {} "
        "rewarded",
        crypto::ToHex(id), Hex(submitter), result.slashed.size(), result.slashed_total.ToDecimal(),
        result.fee.ToDecimal(),
        result.fee_note.empty() ? "" : absl::StrCat(" (", result.fee_note, ")"),
        result.rewarded.size());
    return result;
  }

 private:
  struct Entry {
    int64_t id = 0;
    Amount amount;
    uint64_t release_epoch = 0;
  };

  // Runs `body` in one write transaction; commits when it returns OK, rolls back otherwise.
  template <typename Body>
  absl::Status Write(Body&& body) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return Transaction("BEGIN IMMEDIATE", body);
  }
  template <typename Body>
  absl::Status Read(Body&& body) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return Transaction("BEGIN", body);
  }
  template <typename Body>
  absl::Status Transaction(absl::string_view begin, Body& body) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    RETURN_IF_ERROR(db_->Exec(begin));
    absl::Status status = body();
    if (status.ok()) {
      status = db_->Exec("COMMIT");
      if (status.ok()) return status;
    }
    // Fails harmlessly when SQLite already rolled back on its own.
    db_->Exec("ROLLBACK").IgnoreError();
    return status;
  }

  absl::StatusOr<uint64_t> CurrentEpochNumber() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Stmt select(*db_, "SELECT MAX(number) FROM epochs");
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) return absl::DataLossError("ledger store: no epochs");
    return static_cast<uint64_t>(select.Int(0));
  }

  absl::StatusOr<Epoch> LoadEpoch(uint64_t number) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (number > static_cast<uint64_t>(INT64_MAX)) {
      return absl::NotFoundError(absl::StrCat("epoch ", number, " has not started"));
    }
    Stmt select(*db_, "SELECT seed, started_unix_s FROM epochs WHERE number = ?");
    select.Bind(1, static_cast<int64_t>(number));
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) return absl::NotFoundError(absl::StrCat("epoch ", number, " has not started"));
    Epoch epoch;
    epoch.number = number;
    RETURN_IF_ERROR(select.Blob(0, &epoch.seed));
    epoch.started_unix_s = select.Int(1);
    return epoch;
  }

  absl::StatusOr<Epoch> Advance(std::optional<uint64_t> expected) ABSL_LOCKS_EXCLUDED(mu_) {
    std::array<uint8_t, 32> randomness;
    RETURN_IF_ERROR(options_.random(randomness));
    Epoch next;
    const absl::Status status = Write([&]() -> absl::Status {
      ASSIGN_OR_RETURN(uint64_t current, CurrentEpochNumber());
      if (expected.has_value() && *expected != current) {
        return absl::FailedPreconditionError(
            absl::StrCat("epoch is ", current, ", not ", *expected, " (another node advanced it)"));
      }
      ASSIGN_OR_RETURN(Epoch previous, LoadEpoch(current));
      next.number = current + 1;
      next.seed = NextSeed(previous.seed, randomness);
      next.started_unix_s = options_.unix_seconds();
      Stmt insert(*db_, "INSERT INTO epochs(number, seed, started_unix_s) VALUES(?, ?, ?)");
      insert.Bind(1, static_cast<int64_t>(next.number))
          .Bind(2, next.seed)
          .Bind(3, next.started_unix_s);
      RETURN_IF_ERROR(insert.Run());
      // The snapshot: what is bonded now is what committee selection uses all through the new
      // epoch; later Stake/Unstake/UpdateNode only reach the epoch after.
      Stmt freeze(*db_,
                  "INSERT INTO frozen_stakes(epoch, echelon_id, address, stake) "
                  "SELECT ?, e.echelon_id, n.address, n.bonded FROM nodes n "
                  "JOIN node_echelons e ON e.address = n.address "
                  "WHERE n.bonded <> zeroblob(32)");
      freeze.Bind(1, static_cast<int64_t>(next.number));
      return freeze.Run();
    });
    if (!status.ok()) return status;
    GetLogger("ledger")->info("epoch {} opened, seed {}", next.number, crypto::ToHex(next.seed));
    return next;
  }

  absl::StatusOr<bool> NodeExists(const Address& node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Stmt select(*db_, "SELECT 1 FROM nodes WHERE address = ?");
    select.Bind(1, node);
    return select.Step();
  }

  static absl::Status NotRegistered(const Address& node) {
    return absl::NotFoundError(absl::StrCat("node ", Hex(node), " is not registered"));
  }

  absl::Status RequireNode(const Address& node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ASSIGN_OR_RETURN(bool exists, NodeExists(node));
    return exists ? absl::OkStatus() : NotRegistered(node);
  }

  absl::Status InsertEchelons(const Address& node, const std::vector<EchelonRef>& echelons)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const EchelonRef& ref : echelons) {
      Stmt insert(*db_,
                  "INSERT INTO node_echelons(address, model_digest, echelon_id) VALUES(?, ?, ?)");
      insert.Bind(1, node).Bind(2, ref.model_digest).Bind(3, ref.echelon_id);
      RETURN_IF_ERROR(insert.Run());
    }
    return absl::OkStatus();
  }

  // NOT_FOUND for an unregistered node.
  absl::StatusOr<Amount> Bonded(const Address& node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Stmt select(*db_, "SELECT bonded FROM nodes WHERE address = ?");
    select.Bind(1, node);
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) return NotRegistered(node);
    return ColumnAmount(select, 0);
  }

  absl::Status SetBonded(const Address& node, const Amount& bonded)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Stmt update(*db_, "UPDATE nodes SET bonded = ? WHERE address = ?");
    update.Bind(1, bonded.ToBigEndian()).Bind(2, node);
    return update.Run();
  }

  // Oldest first (release epoch, then insertion order).
  absl::StatusOr<std::vector<Entry>> Unbonding(const Address& node)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Stmt select(*db_,
                "SELECT id, amount, release_epoch FROM unbonding WHERE address = ? "
                "ORDER BY release_epoch, id");
    select.Bind(1, node);
    std::vector<Entry> entries;
    while (true) {
      ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) break;
      Entry e;
      e.id = select.Int(0);
      ASSIGN_OR_RETURN(e.amount, ColumnAmount(select, 1));
      e.release_epoch = static_cast<uint64_t>(select.Int(2));
      entries.push_back(e);
    }
    return entries;
  }

  // The client's escrow as EscrowStatus reports it in `current`.
  absl::StatusOr<EscrowInfo> LoadEscrow(const Address& client, uint64_t current)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    EscrowInfo info;
    ASSIGN_OR_RETURN(info.balance, LoadBalance("escrow", client));
    Stmt select(*db_, "SELECT amount, unlock_epoch FROM escrow_withdrawals WHERE address = ?");
    select.Bind(1, client);
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) return info;
    ASSIGN_OR_RETURN(info.pending, ColumnAmount(select, 0));
    info.unlock_epoch = static_cast<uint64_t>(select.Int(1));
    if (info.unlock_epoch <= current) info.withdrawable = std::min(info.pending, info.balance);
    return info;
  }

  // The rules of WithdrawEscrow (the contract's withdrawEscrow says the same).
  absl::Status CheckEscrowWithdrawal(const Address& client, const EscrowInfo& escrow,
                                     const Amount& amount, uint64_t current) const {
    if (escrow.pending.IsZero()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot withdraw ", amount.ToDecimal(), " of escrow: ", Hex(client),
                       " has no withdrawal requested (request one first; it unlocks ",
                       params_.unbonding_epochs, " epochs later)"));
    }
    if (current < escrow.unlock_epoch) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot withdraw ", amount.ToDecimal(), " of escrow: the withdrawal of ",
          escrow.pending.ToDecimal(), " requested by ", Hex(client), " unlocks at epoch ",
          escrow.unlock_epoch, " (current epoch ", current, ")"));
    }
    if (escrow.withdrawable < amount) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot withdraw ", amount.ToDecimal(), " of escrow: ", Hex(client), " has ",
          escrow.withdrawable.ToDecimal(), " unlocked since epoch ", escrow.unlock_epoch,
          " (pending ", escrow.pending.ToDecimal(), ", balance ", escrow.balance.ToDecimal(), ")"));
    }
    return absl::OkStatus();
  }

  // `table` is one of the two balance tables (a constant, never input).
  absl::StatusOr<Amount> LoadBalance(absl::string_view table, const Address& who)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Stmt select(*db_, absl::StrCat("SELECT balance FROM ", table, " WHERE address = ?"));
    select.Bind(1, who);
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) return Amount();
    return ColumnAmount(select, 0);
  }

  absl::Status StoreBalance(absl::string_view table, const Address& who, const Amount& balance)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Stmt upsert(*db_, absl::StrCat("INSERT INTO ", table,
                                   "(address, balance) VALUES(?, ?) ON CONFLICT(address) DO "
                                   "UPDATE SET balance = excluded.balance"));
    upsert.Bind(1, who).Bind(2, balance.ToBigEndian());
    return upsert.Run();
  }

  absl::StatusOr<Amount> Balance(absl::string_view table, const Address& who) {
    Amount balance;
    const absl::Status status = Read([&]() -> absl::Status {
      ASSIGN_OR_RETURN(balance, LoadBalance(table, who));
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return balance;
  }

  absl::Status Credit(absl::string_view table, const Address& who, const Amount& amount,
                      absl::string_view what) {
    RETURN_IF_ERROR(RequirePositive(amount));
    return Write([&]() -> absl::Status {
      ASSIGN_OR_RETURN(Amount balance, LoadBalance(table, who));
      ASSIGN_OR_RETURN(Amount after, AddOrReject(balance, amount, what));
      return StoreBalance(table, who, after);
    });
  }

  absl::Status Debit(absl::string_view table, const Address& who, const Amount& amount,
                     absl::string_view what) {
    RETURN_IF_ERROR(RequirePositive(amount));
    return Write([&]() -> absl::Status {
      ASSIGN_OR_RETURN(Amount balance, LoadBalance(table, who));
      if (balance < amount) {
        return absl::FailedPreconditionError(absl::StrCat("insufficient ", what, " of ", Hex(who),
                                                          ": ", balance.ToDecimal(), " < ",
                                                          amount.ToDecimal()));
      }
      ASSIGN_OR_RETURN(Amount after, CheckedSub(balance, amount));
      return StoreBalance(table, who, after);
    });
  }

  // Errors of the store itself (as opposed to a rule rejecting one item): they end the batch.
  static bool IsStorageError(const absl::Status& status) {
    return absl::IsUnavailable(status) || absl::IsAborted(status) || absl::IsDataLoss(status) ||
           absl::IsInternal(status);
  }

  // floor(amount * bps / 10000) without overflow: amount = 10000 q + r, so the result is
  // q * bps + floor(r * bps / 10000), and q * bps <= amount.
  static absl::StatusOr<Amount> BasisPointsOf(const Amount& amount, uint64_t bps) {
    ASSIGN_OR_RETURN(DivModResult parts, DivMod(amount, Amount(kBasisPoints)));
    ASSIGN_OR_RETURN(Amount whole, CheckedMul(parts.quotient, bps));
    return CheckedAdd(whole, Amount((parts.remainder.Low64() * bps) / kBasisPoints));
  }

  // Settled by a certificate.
  absl::StatusOr<bool> CertificateSettled(const Hash256& request_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Stmt select(*db_, "SELECT 1 FROM settlements WHERE request_id = ?");
    select.Bind(1, request_id);
    return select.Step();
  }

  absl::StatusOr<bool> DisputeSettled(const Hash256& request_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Stmt select(*db_, "SELECT 1 FROM disputes WHERE request_id = ?");
    select.Bind(1, request_id);
    return select.Step();
  }

  // Settled either way: the client paid (or was refused) once, and the request is closed.
  absl::StatusOr<bool> Settled(const Hash256& request_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ASSIGN_OR_RETURN(bool certificate, CertificateSettled(request_id));
    if (certificate) return true;
    return DisputeSettled(request_id);
  }

  // The request id that closed (client, nonce), if any (schema version 4).
  absl::StatusOr<std::optional<Hash256>> NonceClosedBy(const Address& client, uint64_t nonce)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Stmt select(*db_, "SELECT request_id FROM closed_nonces WHERE client = ? AND nonce = ?");
    select.Bind(1, client).Bind(2, static_cast<int64_t>(nonce));
    ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) return std::optional<Hash256>();
    Hash256 id{};
    RETURN_IF_ERROR(select.Blob(0, &id));
    return std::optional<Hash256>(id);
  }

  // ALREADY_EXISTS when another request of the same client and nonce was settled.
  absl::Status CheckNonceOpen(const consensus::ConsensusRequest& request, const Hash256& id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ASSIGN_OR_RETURN(std::optional<Hash256> closed_by,
                     NonceClosedBy(request.client, request.client_nonce));
    if (closed_by.has_value() && *closed_by != id) {
      return absl::AlreadyExistsError(
          absl::StrCat("nonce ", request.client_nonce, " of client ", Hex(request.client),
                       " was already settled by request ", crypto::ToHex(*closed_by),
                       " (a client nonce settles once)"));
    }
    return absl::OkStatus();
  }

  absl::Status CloseNonce(const consensus::ConsensusRequest& request, const Hash256& id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Stmt insert(*db_, "INSERT INTO closed_nonces(client, nonce, request_id) VALUES(?, ?, ?)");
    insert.Bind(1, request.client).Bind(2, static_cast<int64_t>(request.client_nonce)).Bind(3, id);
    return insert.Run();
  }

  absl::Status InsertSlash(absl::string_view kind, const Hash256& evidence_hash,
                           const Address& offender, const Hash256& request_id,
                           const Address& reporter, const Amount& slashed,
                           const Amount& reporter_reward, uint64_t current_epoch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Stmt insert(*db_,
                "INSERT INTO slashes(kind, evidence_hash, offender, request_id, reporter, slashed, "
                "reporter_reward, epoch) VALUES(?, ?, ?, ?, ?, ?, ?, ?)");
    insert.BindText(1, kind)
        .Bind(2, evidence_hash)
        .Bind(3, offender)
        .Bind(4, request_id)
        .Bind(5, reporter)
        .Bind(6, slashed.ToBigEndian())
        .Bind(7, reporter_reward.ToBigEndian())
        .Bind(8, static_cast<int64_t>(current_epoch));
    return insert.Run();
  }

  // Adds `amount` to `who`'s reward balance (INVALID_ARGUMENT if it would overflow).
  absl::Status CreditReward(const Address& who, const Amount& amount)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (amount.IsZero()) return absl::OkStatus();
    ASSIGN_OR_RETURN(Amount balance, LoadBalance("rewards", who));
    ASSIGN_OR_RETURN(Amount after, AddOrReject(balance, amount, "reward balance"));
    return StoreBalance("rewards", who, after);
  }

  // A dispute's fee: fee_per_token x `tokens`, debited from the client's escrow into `fee` when it
  // is at most max_fee and the escrow covers it. Returns "" when charged (or zero), else why not
  // (the dispute still slashes; the fee is then zero).
  absl::StatusOr<std::string> ChargeDisputeFee(const consensus::ConsensusRequest& request,
                                               const std::optional<uint64_t>& tokens, Amount& fee)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    fee = Amount();
    if (!tokens.has_value()) return std::string("fee not charged: token count above 2^64-1");
    absl::StatusOr<Amount> due = CheckedMul(params_.fee_per_token, *tokens);
    if (!due.ok()) {
      return absl::StrCat("fee not charged: ", *tokens, " tokens at ",
                          params_.fee_per_token.ToDecimal(), " is above 2^256-1");
    }
    if (*due > request.max_fee) {
      return absl::StrCat("fee not charged: fee ", due->ToDecimal(), " (", *tokens, " tokens at ",
                          params_.fee_per_token.ToDecimal(), ") exceeds max_fee ",
                          request.max_fee.ToDecimal());
    }
    ASSIGN_OR_RETURN(Amount escrow, LoadBalance("escrow", request.client));
    if (escrow < *due) {
      return absl::StrCat("fee not charged: escrow of ", Hex(request.client), " holds ",
                          escrow.ToDecimal(), " < fee ", due->ToDecimal());
    }
    if (!due->IsZero()) {
      ASSIGN_OR_RETURN(Amount escrow_after, CheckedSub(escrow, *due));
      RETURN_IF_ERROR(StoreBalance("escrow", request.client, escrow_after));
    }
    fee = *due;
    return std::string();
  }

  // Shares `pool` equally among `who` (integer division; the remainder to the first).
  absl::Status ShareRewards(const Amount& pool, const std::vector<Address>& who)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (pool.IsZero() || who.empty()) return absl::OkStatus();
    ASSIGN_OR_RETURN(DivModResult shares, DivMod(pool, Amount(who.size())));
    for (size_t i = 0; i < who.size(); ++i) {
      Amount share = shares.quotient;
      if (i == 0) {
        ASSIGN_OR_RETURN(share, CheckedAdd(share, shares.remainder));
      }
      RETURN_IF_ERROR(CreditReward(who[i], share));
    }
    return absl::OkStatus();
  }

  // Candidates of `epoch`/`echelon_id`, address order, zero stakes dropped (the epoch exists).
  absl::StatusOr<std::vector<Candidate>> LoadSnapshot(uint64_t epoch, const Hash256& echelon_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<Candidate> candidates;
    Stmt select(*db_,
                "SELECT address, stake FROM frozen_stakes WHERE epoch = ? AND echelon_id = ? "
                "ORDER BY address");
    select.Bind(1, static_cast<int64_t>(epoch)).Bind(2, echelon_id);
    while (true) {
      ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) break;
      Candidate c;
      RETURN_IF_ERROR(select.Blob(0, &c.address));
      ASSIGN_OR_RETURN(c.stake, ColumnAmount(select, 1));
      if (!c.stake.IsZero()) candidates.push_back(c);
    }
    // SQLite orders blobs with memcmp, which is the protocol's order; keep it explicit anyway.
    std::sort(candidates.begin(), candidates.end(),
              [](const Candidate& x, const Candidate& y) { return x.address < y.address; });
    return candidates;
  }

  // The ledger rules of one verified certificate, then its effects. Rule violations return
  // before anything is written; a credit that would overflow returns after some writes (the
  // caller rolls the item's savepoint back).
  absl::Status SettleOne(const Address& submitter, const SettlementItem& item,
                         uint64_t current_epoch, SettlementResult& result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const consensus::ConsensusRequest& request = item.certificate.request;
    ASSIGN_OR_RETURN(bool disputed, DisputeSettled(result.request_id));
    if (disputed) {
      return absl::AlreadyExistsError(absl::StrCat("request ", crypto::ToHex(result.request_id),
                                                   " was already settled by a dispute"));
    }
    ASSIGN_OR_RETURN(bool settled, CertificateSettled(result.request_id));
    if (settled) {
      return absl::AlreadyExistsError(
          absl::StrCat("request ", crypto::ToHex(result.request_id), " is already settled"));
    }
    RETURN_IF_ERROR(CheckNonceOpen(request, result.request_id));
    // Token counts from the request and the output themselves (the verifier checked that the
    // attestations agree with them).
    const uint64_t tokens = request.prompt_token_ids.size() + item.output.token_ids.size();
    absl::StatusOr<Amount> fee = CheckedMul(params_.fee_per_token, tokens);
    if (!fee.ok() || *fee > request.max_fee) {
      return absl::FailedPreconditionError(
          absl::StrCat("fee ", fee.ok() ? fee->ToDecimal() : std::string("above 2^256-1"), " (",
                       tokens, " tokens at ", params_.fee_per_token.ToDecimal(),
                       ") exceeds max_fee ", request.max_fee.ToDecimal()));
    }
    result.fee = *fee;
    ASSIGN_OR_RETURN(Amount escrow, LoadBalance("escrow", request.client));
    if (escrow < *fee) {
      return absl::FailedPreconditionError(
          absl::StrCat("insufficient escrow balance of ", Hex(request.client), ": ",
                       escrow.ToDecimal(), " < fee ", fee->ToDecimal()));
    }
    if (!fee->IsZero()) {
      ASSIGN_OR_RETURN(Amount escrow_after, CheckedSub(escrow, *fee));
      RETURN_IF_ERROR(StoreBalance("escrow", request.client, escrow_after));
      // Cross-validation: the executor (the committee of one) first, then every validator that
      // re-executed; a validator did the same work as the executor, so it gets the same share.
      std::vector<Address> payees = item.certificate.committee;
      if (item.xv.has_value()) {
        for (const consensus::Attestation& v : item.xv->validators) payees.push_back(v.member);
      }
      RETURN_IF_ERROR(ShareRewards(*fee, payees));
    }
    Stmt insert(*db_,
                "INSERT INTO settlements(request_id, request_epoch, client, fee, submitter, "
                "settled_epoch) VALUES(?, ?, ?, ?, ?, ?)");
    insert.Bind(1, result.request_id)
        .Bind(2, static_cast<int64_t>(request.epoch))
        .Bind(3, request.client)
        .Bind(4, fee->ToBigEndian())
        .Bind(5, submitter)
        .Bind(6, static_cast<int64_t>(current_epoch));
    RETURN_IF_ERROR(insert.Run());
    return CloseNonce(request, result.request_id);
  }

  // Takes slash_bps of the node's stake that is still locked (bonded plus unbonding entries not
  // yet released): from bonded first, then from the unbonding entries released last (the stake
  // that would otherwise stay locked longest). Released entries are the owner's already.
  absl::StatusOr<Amount> SlashStake(const Address& node, uint64_t current_epoch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ASSIGN_OR_RETURN(Amount bonded, Bonded(node));
    ASSIGN_OR_RETURN(std::vector<Entry> entries, Unbonding(node));
    Amount locked = bonded;
    for (const Entry& e : entries) {
      // Stake() keeps bonded + unbonding within a uint256, so this sum cannot overflow.
      if (e.release_epoch > current_epoch) {
        ASSIGN_OR_RETURN(locked, CheckedAdd(locked, e.amount));
      }
    }
    ASSIGN_OR_RETURN(Amount slash, BasisPointsOf(locked, params_.slash_bps));
    Amount left = slash;
    const Amount from_bonded = std::min(bonded, left);
    ASSIGN_OR_RETURN(Amount bonded_after, CheckedSub(bonded, from_bonded));
    RETURN_IF_ERROR(SetBonded(node, bonded_after));
    ASSIGN_OR_RETURN(left, CheckedSub(left, from_bonded));
    for (auto it = entries.rbegin(); it != entries.rend() && !left.IsZero(); ++it) {
      if (it->release_epoch <= current_epoch) continue;
      const Amount take = std::min(it->amount, left);
      ASSIGN_OR_RETURN(Amount rest, CheckedSub(it->amount, take));
      ASSIGN_OR_RETURN(left, CheckedSub(left, take));
      if (rest.IsZero()) {
        Stmt remove(*db_, "DELETE FROM unbonding WHERE id = ?");
        remove.Bind(1, it->id);
        RETURN_IF_ERROR(remove.Run());
      } else {
        Stmt update(*db_, "UPDATE unbonding SET amount = ? WHERE id = ?");
        update.Bind(1, rest.ToBigEndian()).Bind(2, it->id);
        RETURN_IF_ERROR(update.Run());
      }
    }
    return slash;
  }

  absl::Mutex mu_;
  const std::unique_ptr<Db> db_ ABSL_PT_GUARDED_BY(mu_);
  const Params params_;
  const EmbeddedLedgerOptions options_;
};

// PRAGMA journal_mode=WAL needs a lock that the busy handler does not always wait for; retry
// until the busy timeout.
absl::Status EnableWal(Db& db, int busy_timeout_ms) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(busy_timeout_ms);
  while (true) {
    Stmt pragma(db, "PRAGMA journal_mode=WAL");
    absl::StatusOr<bool> row = pragma.Step();
    if (row.ok() && *row) {
      if (pragma.Text(0) != "wal") {
        return absl::FailedPreconditionError(
            absl::StrCat("ledger store: WAL mode unavailable (journal mode is ", pragma.Text(0),
                         "); the file system must support shared memory"));
      }
      return absl::OkStatus();
    }
    if (row.ok()) return absl::InternalError("ledger store: PRAGMA journal_mode returned no row");
    if (!absl::IsUnavailable(row.status()) || std::chrono::steady_clock::now() > deadline) {
      return row.status();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

absl::StatusOr<std::string> MetaValue(Db& db, absl::string_view key) {
  Stmt select(db, "SELECT value FROM meta WHERE key = ?");
  select.BindText(1, key);
  ASSIGN_OR_RETURN(bool row, select.Step());
  if (!row) return absl::DataLossError(absl::StrCat("ledger store: meta has no ", key));
  return select.Text(0);
}

absl::StatusOr<uint64_t> MetaNumber(Db& db, absl::string_view key) {
  ASSIGN_OR_RETURN(std::string text, MetaValue(db, key));
  ASSIGN_OR_RETURN(Amount value, Amount::FromDecimal(text));
  if (!value.FitsUint64()) {
    return absl::DataLossError(absl::StrCat("ledger store: meta ", key, " out of range"));
  }
  return value.Low64();
}

absl::Status PutMeta(Db& db, absl::string_view key, absl::string_view value) {
  Stmt insert(db, "INSERT INTO meta(key, value) VALUES(?, ?)");
  insert.BindText(1, key).BindText(2, value);
  return insert.Run();
}

absl::StatusOr<uint64_t> MetaBasisPoints(Db& db, absl::string_view key) {
  ASSIGN_OR_RETURN(uint64_t value, MetaNumber(db, key));
  if (value > LedgerClient::kBasisPoints) {
    return absl::DataLossError(absl::StrCat("ledger store: meta ", key, " above 10000"));
  }
  return value;
}

// Writes the settlement/slashing tables and parameters (schema version 2) from `options`.
absl::Status CreateV2(Db& db, const EmbeddedLedgerOptions& options) {
  RETURN_IF_ERROR(db.Exec(kSchemaV2));
  Address ledger_address{};
  if (options.ledger_address.has_value()) {
    ledger_address = *options.ledger_address;
  } else {
    Stmt genesis(db, "SELECT seed FROM epochs WHERE number = 0");
    ASSIGN_OR_RETURN(bool row, genesis.Step());
    if (!row) return absl::DataLossError("ledger store: no genesis epoch");
    Hash256 seed{};
    RETURN_IF_ERROR(genesis.Blob(0, &seed));
    const Hash256 id = consensus::TaggedHash("atoma/embedded-ledger", seed);
    std::copy_n(id.begin(), ledger_address.size(), ledger_address.begin());
  }
  RETURN_IF_ERROR(PutMeta(db, "chain_id", absl::StrCat(options.chain_id)));
  RETURN_IF_ERROR(PutMeta(db, "ledger_address", crypto::AddressToString(ledger_address)));
  RETURN_IF_ERROR(PutMeta(db, "fee_per_token", options.fee_per_token.ToDecimal()));
  RETURN_IF_ERROR(PutMeta(db, "slash_bps", absl::StrCat(options.slash_bps)));
  return PutMeta(db, "reporter_share_bps", absl::StrCat(options.reporter_share_bps));
}

// Creates the schema and epoch 0 when the file is new, migrates a version-1 file (adds the
// settlement tables with `options`' parameters) and a version-2 file (slash kinds, disputes), and
// checks the version otherwise. Returns the
// ledger's parameters. Runs in one write transaction so two processes opening a new file at once
// create (or migrate) it exactly once.
absl::StatusOr<Params> InitSchema(Db& db, const EmbeddedLedgerOptions& options) {
  RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  auto body = [&]() -> absl::StatusOr<Params> {
    bool has_meta = false;
    {
      // Finalized before the migration below: DROP TABLE fails while a statement is active.
      Stmt exists(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'");
      ASSIGN_OR_RETURN(has_meta, exists.Step());
    }
    if (!has_meta) {
      RETURN_IF_ERROR(db.Exec(kSchema));
      RETURN_IF_ERROR(PutMeta(db, "schema_version", absl::StrCat(kSchemaVersion)));
      RETURN_IF_ERROR(PutMeta(db, "unbonding_epochs", absl::StrCat(options.unbonding_epochs)));
      RETURN_IF_ERROR(PutMeta(db, "epoch_length_s", absl::StrCat(options.epoch_length_s)));
      std::array<uint8_t, 32> randomness;
      RETURN_IF_ERROR(options.random(randomness));
      const Hash256 seed = NextSeed(Hash256{}, randomness);
      Stmt genesis(db, "INSERT INTO epochs(number, seed, started_unix_s) VALUES(0, ?, ?)");
      genesis.Bind(1, seed).Bind(2, options.unix_seconds());
      RETURN_IF_ERROR(genesis.Run());
      RETURN_IF_ERROR(CreateV2(db, options));
      RETURN_IF_ERROR(db.Exec(kSchemaV3));
      RETURN_IF_ERROR(db.Exec(kSchemaV4));
      RETURN_IF_ERROR(db.Exec(kSchemaV5));
    }
    ASSIGN_OR_RETURN(uint64_t version, MetaNumber(db, "schema_version"));
    const uint64_t found = version;
    if (version == 1) {
      RETURN_IF_ERROR(CreateV2(db, options));
      version = 2;
    }
    if (version == 2) {
      RETURN_IF_ERROR(db.Exec(kSchemaV3));
      version = 3;
    }
    if (version == 3) {
      RETURN_IF_ERROR(db.Exec(kSchemaV4));
      version = 4;
    }
    if (version == 4) {
      RETURN_IF_ERROR(db.Exec(kSchemaV5));
      version = 5;
    }
    if (found != version) {
      Stmt bump(db, "UPDATE meta SET value = ? WHERE key = 'schema_version'");
      bump.BindText(1, absl::StrCat(version));
      RETURN_IF_ERROR(bump.Run());
      GetLogger("ledger")->info("ledger store migrated from schema version {} to {}", found,
                                version);
    }
    if (version != static_cast<uint64_t>(kSchemaVersion)) {
      return absl::FailedPreconditionError(absl::StrCat("ledger store has schema version ", version,
                                                        "; this build reads ", kSchemaVersion));
    }
    Params params;
    ASSIGN_OR_RETURN(params.unbonding_epochs, MetaNumber(db, "unbonding_epochs"));
    ASSIGN_OR_RETURN(params.epoch_length_s, MetaNumber(db, "epoch_length_s"));
    ASSIGN_OR_RETURN(params.domain.chain_id, MetaNumber(db, "chain_id"));
    ASSIGN_OR_RETURN(std::string address, MetaValue(db, "ledger_address"));
    absl::StatusOr<Address> parsed = crypto::ParseAddress(address);
    if (!parsed.ok()) return absl::DataLossError("ledger store: bad meta ledger_address");
    params.domain.ledger = *parsed;
    ASSIGN_OR_RETURN(std::string fee, MetaValue(db, "fee_per_token"));
    absl::StatusOr<Amount> fee_value = Amount::FromDecimal(fee);
    if (!fee_value.ok()) return absl::DataLossError("ledger store: bad meta fee_per_token");
    params.fee_per_token = *fee_value;
    ASSIGN_OR_RETURN(params.slash_bps, MetaBasisPoints(db, "slash_bps"));
    ASSIGN_OR_RETURN(params.reporter_share_bps, MetaBasisPoints(db, "reporter_share_bps"));
    return params;
  };
  absl::StatusOr<Params> params = body();
  if (params.ok()) {
    absl::Status commit = db.Exec("COMMIT");
    if (commit.ok()) return params;
    params = commit;
  }
  db.Exec("ROLLBACK").IgnoreError();
  return params;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LedgerClient>> OpenEmbeddedLedger(
    const std::filesystem::path& path, const EmbeddedLedgerOptions& options) {
  if (options.unbonding_epochs == 0) {
    // Zero would let a node unstake and withdraw inside the epoch its stake is frozen in,
    // escaping any slashing for work it did in that epoch.
    return absl::InvalidArgumentError("unbonding_epochs must be at least 1");
  }
  if (options.unbonding_epochs > kMaxUnbondingEpochs) {
    // Keeps `epoch + unbonding_epochs` far from the int64 range SQLite stores epochs in.
    return absl::InvalidArgumentError(
        absl::StrCat("unbonding_epochs must be at most ", kMaxUnbondingEpochs));
  }
  if (options.epoch_length_s == 0) {
    return absl::InvalidArgumentError("epoch_length_s must be positive");
  }
  if (options.slash_bps > LedgerClient::kBasisPoints ||
      options.reporter_share_bps > LedgerClient::kBasisPoints) {
    return absl::InvalidArgumentError("slash_bps and reporter_share_bps must be at most 10000");
  }
  if (options.busy_timeout_ms < 0) {
    return absl::InvalidArgumentError("busy_timeout_ms must not be negative");
  }
  EmbeddedLedgerOptions effective = options;
  if (!effective.random) effective.random = OsRandom;
  if (!effective.unix_seconds) effective.unix_seconds = SystemUnixSeconds;

  ASSIGN_OR_RETURN(std::unique_ptr<Db> db,
                   Db::Open(path, effective.busy_timeout_ms, "ledger store"));
  RETURN_IF_ERROR(EnableWal(*db, effective.busy_timeout_ms));
  // FULL: a committed balance change survives power loss (NORMAL in WAL mode may drop the last
  // commits). Ledger writes are few, so the fsync per commit is affordable.
  RETURN_IF_ERROR(db->Exec("PRAGMA synchronous=FULL"));
  ASSIGN_OR_RETURN(Params params, InitSchema(*db, effective));
  if (params.unbonding_epochs != options.unbonding_epochs ||
      params.epoch_length_s != options.epoch_length_s) {
    GetLogger("ledger")->info(
        "ledger {} keeps its own parameters: unbonding {} epochs, epoch length {} s", path.string(),
        params.unbonding_epochs, params.epoch_length_s);
  }
  return std::make_unique<EmbeddedLedger>(std::move(db), params, std::move(effective));
}

}  // namespace atoma::ledger
