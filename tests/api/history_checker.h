// A checker of client histories against the store's final state (issue 18: the daemon kill
// loop). Clients record every invocation (what they asked, when, and what they were told);
// after the run the test reads every version of every path. CheckHistory then verifies:
//   - per path, versions are 1..N with no gap, and every stored value was written by some
//     invocation (no phantom value), and no value is stored twice (an idempotent retry, or
//     anything else, applied once);
//   - every acknowledged write is stored, at the version its answer named (no lost write);
//   - a write told it failed (a definite error) is not stored;
//   - a transaction is all or nothing, acknowledged or not;
//   - a compare-and-set write that is stored sits right above the version it expected;
//   - linearizable per path: a write acknowledged before another was invoked has the lower
//     version, and a read returns a stored value, not older than any write acknowledged
//     before it began, written by an invocation that began before the read ended.
// Each violation is named (Violation::kind); tests/api/history_checker_test.cc plants each
// one in a small history to show the checker finds it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sk::testing {

struct HistoryWrite {
  std::string path;
  std::string value;                 // unique per write in a run
  std::optional<std::uint64_t> cas;  // compare-and-set: the version expected as the head
  std::uint64_t version = 0;         // the version the answer named (acknowledged writes)
};

struct HistoryOp {
  enum class Kind { kPut, kTxn, kGet };
  // kOk: acknowledged; kFailed: a definite error (nothing applied); kUnknown: no answer
  // (the daemon died), never resolved.
  enum class Outcome { kOk, kFailed, kUnknown };
  int client = 0;
  Kind kind = Kind::kPut;
  Outcome outcome = Outcome::kUnknown;
  std::int64_t invoke_ns = 0;
  std::int64_t complete_ns = 0;      // when the definite answer came (ignored for kUnknown)
  std::vector<HistoryWrite> writes;  // kPut: one; kTxn: several paths
  // kGet:
  std::string read_path;
  bool read_none = false;  // 404: the path had no version
  std::uint64_t read_version = 0;
  std::string read_value;
  std::string label;  // for messages ("c3#17 txn")
};

struct StoredVersion {
  std::uint64_t version = 0;
  std::string value;
};
using FinalState = std::map<std::string, std::vector<StoredVersion>>;  // path -> versions in order

struct Violation {
  std::string kind;  // version_gap, phantom_value, duplicate_value, lost_write, wrong_version,
                     // failed_write_applied, partial_txn, cas_violation, order_violation,
                     // phantom_read, stale_read, read_from_future
  std::string detail;
};

std::vector<Violation> CheckHistory(const std::vector<HistoryOp>& ops, const FinalState& final_state);

}  // namespace sk::testing
