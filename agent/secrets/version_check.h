// "A version verifies" (docs/design.md), as one function used by reads, rollbacks,
// restores, version listings and full verification. Checks, in order:
//   destroyed -> below_floor -> seal_invalid (start-up findings, then the entry re-read
//   and re-sealed now) -> chain_broken (cut off from the path's or the global chain)
//   -> content_mismatch (ciphertext digest, data-key unwrap, key commitment, AEAD tag)
//   -> key_retired (the wrapped key's generation is gone).
// The first failing check is the refusal reason. Backend errors that are not about the
// version (HSM unreachable...) are returned as they are.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "agent/journal/journal_format.h"
#include "agent/journal/sealer.h"
#include "agent/secrets/dek_cache.h"
#include "agent/secrets/index.h"
#include "agent/store/store.h"
#include "hsm/key_backend.h"

namespace sk::secrets {

struct VersionCheck {
  std::string path;
  std::uint64_t version = 0;
  VersionInfo info;
  PathFields fields;
  std::uint64_t global_ok_from = 0;
  std::uint64_t disk_chain_ok_from = 0;  // from PathChainOkFrom, or 0 when not re-scanned
};

struct Refusal {
  std::string reason;  // seal_invalid, chain_broken, content_mismatch, destroyed, ...
  std::string message;
};

struct OpenedVersion {
  journal::Entry entry;  // from a cache hit: only path, version, content_digest and labels
  SecretBytes value;     // only when asked to open the value
};

// The checks that need no I/O (state, floor, start-up findings, chains).
std::optional<Refusal> CheckIndexed(const VersionCheck& c);

struct CheckContext {
  store::Reader& reader;
  journal::Sealer& sealer;
  hsm::KeyBackend& backend;
  ByteView store_id;
  DekCache* cache = nullptr;  // may be null
  // Reads may trust the cached facts of an entry verified earlier; rollbacks and
  // verification re-read and re-seal it every time.
  bool trust_cached_entry = false;
};

// All checks; on success returns the entry and, when `open_value`, the plaintext.
// A refusal comes back as Status(kConflict, reason, message); other errors as they are.
Result<OpenedVersion> CheckVersion(CheckContext& ctx, const VersionCheck& c, bool open_value);

// A version's stored bytes against its sealed entry, trusting no cache: the ciphertext
// matches content_digest, the wrapped data key unwraps (under the live generation its
// blob names, with the version's AAD) to the key dek_commit names, and the value
// decrypts. Full verification runs it for every version that holds bytes. Refusals
// (kConflict): content_mismatch, key_retired; backend failures as they are.
Status CheckStoredBytes(hsm::KeyBackend& backend, ByteView store_id, const std::string& path,
                        std::uint64_t version, const journal::Entry& entry, const store::VersionBlob& blob);

// Re-reads a path's entries from the store and returns the lowest seq from which its
// chain (seals and prev_path_hash links) is intact up to `fields.last_hash`; returns
// UINT64_MAX when even the last entry does not match what the index holds.
Result<std::uint64_t> PathChainOkFrom(store::Reader& reader, journal::Sealer& sealer, const std::string& path,
                                      const PathFields& fields);

Status RefusalStatus(const Refusal& r);

}  // namespace sk::secrets
