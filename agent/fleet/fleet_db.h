// The fleet journal's home in PostgreSQL (docs/fleet.md, "Schema"), through libpq: one
// connection, binary results, every statement with its parameters apart (never spliced).
//
// Tables (Migrate creates them; schema version in sk_fleet_meta):
//   sk_fleet_head     one row (id = 1): the head seq and hash, locked FOR UPDATE by a writer
//   sk_fleet_entries  seq (primary key: two entries with one seq cannot both land), hash, entry
//   sk_fleet_wraps    (host_id, seq, path): a put's DEK wrapped to one host
//   sk_fleet_pending  hosts that asked to join (unsigned; `fleet approve` signs them in)
//   sk_fleet_applied  what each host reports: the seq it applied, its refusal if any
//   sk_fleet_snapshots named sets of (path, version, seq), signed (fleet_writer.h)
// A writer's Append runs in one transaction with the head row locked, so two writers queue
// and never fork the chain; it NOTIFYs channel sk_fleet with the new seq, which hosts LISTEN on.
//
// Errors: fleet_unavailable (kUnavailable) when the server cannot be reached or a statement
// fails for a reason of the server's; fleet_conflict (kConflict) when the head moved under an
// append. Not thread-safe: one FleetDb per thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/fleet/fleet_chain.h"
#include "crypto/recovery_wrap.h"
#include "crypto/secret_bytes.h"

struct pg_conn;

namespace sk::fleet {

inline constexpr int kFleetSchemaVersion = 2;  // 2 added sk_fleet_snapshots; Migrate upgrades a 1
inline constexpr std::size_t kMaxSnapshotBytes = 1u << 20;

struct WrapRow {
  std::string host_id;
  std::string path;
  std::uint64_t version = 0;
  Bytes wrap;
};

struct PendingHost {
  std::string host_id;
  KeyKind key_kind = KeyKind::kSoftware;
  Bytes public_key;
  std::vector<std::string> groups;
};

struct AppliedReport {
  std::string host_id;
  std::uint64_t seq = 0;
  std::string refusal;  // empty when none
};

class FleetDb {
 public:
  // `url`: a libpq connection string or URI. The password, when needed, travels apart from
  // it, never in a string that might be logged. A connection attempt gives up after 10 s
  // unless the URL sets its own connect_timeout.
  [[nodiscard]] static Result<std::unique_ptr<FleetDb>> Connect(const std::string& url,
                                                                const SecretBytes* password);
  ~FleetDb();
  FleetDb(const FleetDb&) = delete;
  FleetDb& operator=(const FleetDb&) = delete;

  [[nodiscard]] Status Migrate();

  [[nodiscard]] Result<ChainHead> Head();
  // Up to `limit` encoded entries with seq > after, in order.
  [[nodiscard]] Result<std::vector<Bytes>> EntriesAfter(std::uint64_t after, std::size_t limit);
  [[nodiscard]] Result<std::vector<WrapRow>> WrapsFor(std::uint64_t seq, const std::string& host_id);
  // The encoded entry `seq`; not_found when the database has none.
  [[nodiscard]] Result<Bytes> EntryAt(std::uint64_t seq);

  // Snapshots: a body and its signature, as the writer made them (fleet_writer.h). A name
  // is written once (a second put fails); a body longer than kMaxSnapshotBytes reads as empty.
  struct StoredSnapshot {
    Bytes body;
    Bytes signature;
  };
  [[nodiscard]] Status PutSnapshot(const std::string& name, ByteView body, ByteView signature);
  [[nodiscard]] Result<std::optional<StoredSnapshot>> GetSnapshot(const std::string& name);

  // One transaction: locks the head, calls `build` with it (which may read through this
  // FleetDb, e.g. EntriesAfter to catch up), inserts the entry it returns with its wraps,
  // moves the head, notifies, commits. Nothing is written when `build` fails.
  struct Append {
    Bytes entry;
    std::uint64_t seq = 0;
    Digest hash{};
    std::vector<WrapRow> wraps;
  };
  [[nodiscard]] Status AppendLocked(const std::function<Result<Append>(const ChainHead&)>& build);

  [[nodiscard]] Status PublishPending(const PendingHost& host);
  [[nodiscard]] Result<std::vector<PendingHost>> Pending();
  [[nodiscard]] Status ReportApplied(const AppliedReport& report);
  [[nodiscard]] Result<std::vector<AppliedReport>> Applied();

  // LISTEN sk_fleet; WaitForNotify: true when a notification came within `timeout`.
  [[nodiscard]] Status Listen();
  [[nodiscard]] Result<bool> WaitForNotify(std::chrono::milliseconds timeout);

 private:
  explicit FleetDb(pg_conn* conn) : conn_(conn) {}
  struct Rows;
  [[nodiscard]] Result<Rows> Run(const char* sql, const std::vector<ByteView>& params);
  [[nodiscard]] Result<Rows> Check(Rows rows);
  [[nodiscard]] Status Exec(const char* sql);
  pg_conn* conn_;
};

}  // namespace sk::fleet
