// Streaming verification of the whole journal: every entry's seal and both links of the
// global chain (seq contiguity and prev_hash), with the HMAC work spread over threads.
// Used at start-up (to build the in-memory index), by `GET /v1/sys/journal/verify`, by
// the offline verifier and by the benchmark. Per-path links are checked by the caller,
// which knows paths.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "agent/journal/journal_format.h"
#include "agent/store/store.h"
#include "crypto/secret_bytes.h"

namespace sk::journal {

struct ScannedEntry {
  std::uint64_t seq = 0;       // from the row
  std::string row_path;        // the row's (unsealed) path column
  Digest stored_seal{};        // the row's seal column: the entry's hash as far as links go
  std::optional<Entry> entry;  // decoded; absent when the bytes do not parse
  bool seal_ok = false;        // HMAC matches and the entry parsed with seq == row seq
  bool link_ok = false;        // seq follows its predecessor and prev_hash is its stored seal
};

struct ScanSummary {
  std::uint64_t entries = 0;
  std::uint64_t last_seq = 0;
  Digest last_hash{};
  std::uint64_t bad_seals = 0;
  std::uint64_t broken_links = 0;
};

// Calls fn for every entry in seq order. `threads` >= 1 computes seals in parallel
// (the calling thread reads rows meanwhile). Errors come only from the store.
Result<ScanSummary> ScanJournal(store::Reader& reader, const SecretBytes& journal_key, int threads,
                                const std::function<void(ScannedEntry&)>& fn);

}  // namespace sk::journal
