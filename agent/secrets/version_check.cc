#include "agent/secrets/version_check.h"

#include <limits>
#include <vector>

#include "agent/secrets/keys.h"
#include "crypto/aead.h"
#include "crypto/ct.h"
#include "crypto/reasons.h"

namespace sk::secrets {
namespace {

std::string Name(const std::string& path, std::uint64_t version) {
  return path + " version " + std::to_string(version);
}
std::string Name(const VersionCheck& c) { return Name(c.path, c.version); }

// Unwraps a version's data key and checks it is the one its entry committed to.
Result<SecretBytes> UnwrapCommitted(hsm::KeyBackend& backend, ByteView store_id, const std::string& path,
                                    std::uint64_t version, ByteView wrapped, const Digest& dek_commit) {
  auto refuse = [&](const char* reason, const std::string& why) {
    return RefusalStatus({reason, Name(path, version) + ": " + why});
  };
  auto unwrapped = backend.Unwrap(wrapped, DekAad(store_id, path, version));
  if (!unwrapped.ok()) {
    std::string_view reason = unwrapped.status().reason();
    if (reason == sk::reason::kKeyRetired)
      return refuse("key_retired", "its data key's master-key generation is retired");
    if (sk::reason::IsUnopenableBlob(reason)) {
      return refuse("content_mismatch", "its wrapped data key does not verify");
    }
    return std::move(unwrapped).status();
  }
  if (!ConstantTimeEqual(journal::DekCommit(*unwrapped), dek_commit)) {
    return refuse("content_mismatch", "its data key is not the one the journal committed to");
  }
  return std::move(unwrapped).value();
}

}  // namespace

Status CheckStoredBytes(hsm::KeyBackend& backend, ByteView store_id, const std::string& path,
                        std::uint64_t version, const journal::Entry& entry, const store::VersionBlob& blob) {
  auto refuse = [&](const char* reason, const std::string& why) {
    return RefusalStatus({reason, Name(path, version) + ": " + why});
  };
  if (blob.erased) return refuse("content_mismatch", "its stored bytes are missing");
  if (!ConstantTimeEqual(Sha256(blob.ciphertext), entry.content_digest)) {
    return refuse("content_mismatch", "the stored ciphertext does not match its sealed digest");
  }
  SK_ASSIGN_OR_RETURN(SecretBytes dek,
                      UnwrapCommitted(backend, store_id, path, version, blob.wrapped_dek, entry.dek_commit));
  if (!AeadOpen(dek, ValueAad(store_id, path, version), blob.ciphertext).ok()) {
    return refuse("content_mismatch", "the value does not decrypt");
  }
  return OkStatus();
}

Status RefusalStatus(const Refusal& r) { return Status(Code::kConflict, r.reason, r.message); }

std::optional<Refusal> CheckIndexed(const VersionCheck& c) {
  if (c.info.state == VersionState::kDestroyed) return Refusal{"destroyed", Name(c) + " was destroyed"};
  if (c.version < c.fields.floor) {
    return Refusal{"below_floor",
                   Name(c) + " is below the path's rollback floor " + std::to_string(c.fields.floor)};
  }
  if (c.info.seal_invalid || c.fields.tainted) {
    return Refusal{"seal_invalid", "a journal entry of " + Name(c) + " does not verify"};
  }
  std::uint64_t seq = c.info.created_seq;
  if (seq < c.global_ok_from || seq < c.fields.chain_ok_from || seq < c.disk_chain_ok_from) {
    return Refusal{"chain_broken", "the journal chain from " + Name(c) + " to the sealed head is broken"};
  }
  return std::nullopt;
}

Result<OpenedVersion> CheckVersion(CheckContext& ctx, const VersionCheck& c, bool open_value) {
  if (auto r = CheckIndexed(c)) return RefusalStatus(*r);
  auto refuse = [&](const char* reason, const std::string& why) {
    return RefusalStatus({reason, Name(c) + ": " + why});
  };

  OpenedVersion out;
  std::optional<CachedVersion> cached;
  if (ctx.cache != nullptr) cached = ctx.cache->Get(c.path, c.version, c.info.created_seq);
  if (cached && ctx.trust_cached_entry) {
    out.entry.path = c.path;
    out.entry.version = c.version;
    out.entry.content_digest = cached->content_digest;
    out.entry.detail.labels = cached->labels;
    out.entry.expires_ms = c.info.expires_ms;
  } else {
    SK_ASSIGN_OR_RETURN(auto row, ctx.reader.GetEntry(c.info.created_seq));
    if (!row) return refuse("chain_broken", "its journal entry is missing");
    auto entry = journal::DecodeEntry(row->entry);
    if (!entry.ok() || !ctx.sealer.EntrySealMatches(row->entry, row->seal) || entry->seq != row->seq) {
      return refuse("seal_invalid", "its journal entry does not verify");
    }
    if (entry->path != c.path || entry->version != c.version || !journal::CreatesVersion(entry->kind)) {
      return refuse("seal_invalid", "its journal entry names another version");
    }
    out.entry = std::move(entry).value();
    if (cached && cached->content_digest != out.entry.content_digest) cached.reset();
  }

  SK_ASSIGN_OR_RETURN(auto blob, ctx.reader.GetVersion(c.path, c.version));
  if (!blob || blob->erased) return refuse("content_mismatch", "its stored bytes are missing");
  if (!ConstantTimeEqual(Sha256(blob->ciphertext), out.entry.content_digest)) {
    return refuse("content_mismatch", "the stored ciphertext does not match its sealed digest");
  }

  std::shared_ptr<const SecretBytes> dek = cached ? cached->dek : nullptr;
  if (!dek) {
    SK_ASSIGN_OR_RETURN(SecretBytes unwrapped, UnwrapCommitted(ctx.backend, ctx.store_id, c.path, c.version,
                                                               blob->wrapped_dek, out.entry.dek_commit));
    dek = std::make_shared<const SecretBytes>(std::move(unwrapped));
    if (ctx.cache != nullptr) {
      ctx.cache->Put(c.path, c.version, c.info.created_seq,
                     {dek, out.entry.content_digest, out.entry.detail.labels});
    }
  }

  if (open_value) {
    auto value = AeadOpen(*dek, ValueAad(ctx.store_id, c.path, c.version), blob->ciphertext);
    if (!value.ok()) return refuse("content_mismatch", "the value does not decrypt");
    out.value = std::move(value).value();
  }
  return out;
}

Result<std::uint64_t> PathChainOkFrom(store::Reader& reader, journal::Sealer& sealer, const std::string& path,
                                      const PathFields& fields) {
  struct Link {
    std::uint64_t seq;
    bool sealed;  // the entry's own seal is good
    bool linked;  // and it names the previous entry of the path
  };
  std::vector<Link> links;
  Digest prev{};
  Digest last_seal{};
  SK_RETURN_IF_ERROR(reader.ScanPathEntries(path, 0, [&](store::JournalRecord& r) {
    auto e = journal::DecodeEntry(r.entry);
    bool sealed = e.ok() && e->seq == r.seq && e->path == path && sealer.EntrySealMatches(r.entry, r.seal);
    links.push_back({r.seq, sealed, sealed && e->prev_path_hash == prev});
    prev = r.seal;
    last_seal = r.seal;
    return true;
  }));
  if (links.empty() || last_seal != fields.last_hash || links.back().seq != fields.last_seq) {
    return std::numeric_limits<std::uint64_t>::max();
  }
  std::uint64_t ok_from = 0;
  for (std::size_t i = links.size(); i-- > 0;) {
    if (!links[i].sealed) {
      ok_from = links[i].seq + 1;  // the entry itself is untrusted
      break;
    }
    if (!links[i].linked) {
      ok_from = links[i].seq;  // sound from here on, cut off from what came before
      break;
    }
  }
  return ok_from;
}

}  // namespace sk::secrets
