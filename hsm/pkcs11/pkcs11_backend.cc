#include "hsm/pkcs11/pkcs11_backend.h"

#include <limits>
#include <mutex>
#include <shared_mutex>
#include <string>

#include "crypto/random.h"
#include "crypto/recovery_wrap.h"
#include "hsm/pkcs11/anchor_object.h"
#include "hsm/pkcs11/ecdh_key.h"
#include "hsm/pkcs11/master_key.h"
#include "hsm/pkcs11/objects.h"
#include "hsm/pkcs11/open_token.h"
#include "hsm/pkcs11/session_pool.h"
#include "hsm/pkcs11/sync_dir.h"
#include "hsm/pkcs11/token_gcm.h"
#include "hsm/wrapped_blob_format.h"

namespace sk::hsm::pkcs11 {
namespace {

Status WrongToken(const std::string& why) { return Status(Code::kCorruption, "wrong_token", why); }

class Pkcs11Backend final : public KeyBackend {
 public:
  Pkcs11Backend(OpenToken token, KeysetId keyset, KeyHandles token_keys, KeyHandles keys,
                const Pkcs11Config& config)
      : module_(token.module),
        token_(std::move(token.info)),
        keyset_(keyset),
        control_(std::move(token.session)),
        token_keys_(std::move(token_keys)),
        keys_(std::move(keys)),
        current_(keys_.rbegin()->first),
        sync_dir_(config.sync_dir),
        config_(config),
        pool_(std::make_unique<SessionPool>(module_, token_.slot, config.max_sessions)) {}

  Result<Bytes> Wrap(const SecretBytes& key, ByteView aad) override;
  Result<SecretBytes> Unwrap(ByteView blob, ByteView aad) override;
  Result<Anchor> ReadAnchor() override;
  Result<Anchor> AdvanceAnchor(std::uint64_t seq, const Digest& head_hash) override;
  BackendInfo Info() const override;
  Result<std::uint32_t> Rotate() override;
  Status Retire(std::uint32_t generation) override;
  // The fleet host key: a token key pair (ecdh_key.h) labelled kHostKeyLabel, with a
  // session of its own.
  Result<std::unique_ptr<EcdhPrivateKey>> OpenHostKey() override {
    std::lock_guard lock(admin_mu_);  // two first calls must not make two pairs
    SK_ASSIGN_OR_RETURN(std::unique_ptr<EcdhPrivateKey> key, OpenEcdhKey(config_, kHostKeyLabel, true));
    SK_RETURN_IF_ERROR(SyncIfConfigured(sync_dir_));
    return key;
  }
  static constexpr const char* kHostKeyLabel = "sealkeep-fleet-host";

 private:
  // Reads and verifies the stored anchor; admin_mu_ held.
  Result<AnchorRecord> ReadRecord() { return pkcs11::ReadAnchor(control_, keyset_, keys_); }
  // Seals `anchor` under the current generation and stores it; admin_mu_ held.
  Status StoreRecord(const Anchor& anchor);

  std::shared_ptr<Module> module_;
  const TokenInfo token_;
  const KeysetId keyset_;

  std::mutex admin_mu_;    // serialises anchor and generation changes; guards control_
  Session control_;        // read-write, logged in; keeps the login alive and owns the session copies
  KeyHandles token_keys_;  // generation -> token object; guarded by admin_mu_

  // Written only with admin_mu_ and keys_mu_ (exclusive) held; read under either.
  // keys_ maps a generation to the handle operations use: its session copy, or the
  // token object where the module would not copy it (master_key.h).
  mutable std::shared_mutex keys_mu_;
  KeyHandles keys_;
  std::uint32_t current_;

  const std::string sync_dir_;         // SoftHSM2's token folder, fsynced after each change (or empty)
  const Pkcs11Config config_;          // for the host key's own session
  std::unique_ptr<SessionPool> pool_;  // declared last: its sessions close first
};

Result<Bytes> Pkcs11Backend::Wrap(const SecretBytes& key, ByteView aad) {
  if (key.empty() || key.size() > kMaxWrappedKey) {
    return InvalidArgument("a wrapped key must be 1 to 64 bytes, not " + std::to_string(key.size()),
                           "key_size");
  }
  WrappedHeader header{kKindPkcs11, keyset_, 0};
  ck_object_handle_t handle = CK_INVALID_HANDLE;
  {
    std::shared_lock lock(keys_mu_);
    header.generation = current_;
    handle = keys_.at(current_);
  }
  Bytes blob = EncodeWrappedHeader(header);
  const std::size_t n = key.size();
  blob.resize(kWrappedHeaderSize + kWrapIvSize + n + kWrapTagSize);
  auto iv = std::span(blob).subspan(kWrappedHeaderSize, kWrapIvSize);
  SK_RETURN_IF_ERROR(FillRandom(iv));
  Bytes gcm_aad = WrapAad(ByteView(blob).first(kWrappedHeaderSize), aad);
  SK_ASSIGN_OR_RETURN(auto lease, pool_->Acquire());
  Status st = GcmEncrypt(pool_->fn(), lease.handle(), handle, iv, gcm_aad, key.Expose(),
                         std::span(blob).subspan(kWrappedHeaderSize + kWrapIvSize));
  if (!SessionStillUsable(st)) lease.Discard();
  SK_RETURN_IF_ERROR(st);
  return blob;
}

Result<SecretBytes> Pkcs11Backend::Unwrap(ByteView blob, ByteView aad) {
  SK_ASSIGN_OR_RETURN(WrappedParts parts, ParseWrappedBlob(blob));
  if (parts.header.kind != kKindPkcs11)
    return WrongToken("the blob was wrapped by a TPM backend, not PKCS#11");
  if (parts.header.keyset_id != keyset_) {
    return WrongToken("the blob was wrapped by keyset " + HexEncode(parts.header.keyset_id) + ", not by " +
                      token_.Describe() + " (keyset " + HexEncode(keyset_) + ")");
  }
  ck_object_handle_t handle = CK_INVALID_HANDLE;
  {
    std::shared_lock lock(keys_mu_);
    auto it = keys_.find(parts.header.generation);
    if (it == keys_.end()) {
      return Status(Code::kFailedPrecondition, "key_retired",
                    "master-key generation " + std::to_string(parts.header.generation) + " is not live on " +
                        token_.Describe() + " (retired, or never made)");
    }
    handle = it->second;
  }
  Bytes gcm_aad = WrapAad(parts.header_bytes, aad);
  // ciphertext || tag are contiguous in the blob, as C_Decrypt wants them.
  ByteView in(parts.ciphertext.data(), parts.ciphertext.size() + parts.tag.size());
  SecretBytes out(in.size());  // SoftHSM2 wants room for the tag too; Truncate wipes it
  std::size_t written = 0;
  SK_ASSIGN_OR_RETURN(auto lease, pool_->Acquire());
  Status st = GcmDecrypt(pool_->fn(), lease.handle(), handle, parts.iv, gcm_aad, in, out.Expose(), &written);
  if (!SessionStillUsable(st)) lease.Discard();
  SK_RETURN_IF_ERROR(st);
  out.Truncate(written);
  return out;
}

Result<Anchor> Pkcs11Backend::ReadAnchor() {
  std::lock_guard lock(admin_mu_);
  SK_ASSIGN_OR_RETURN(AnchorRecord rec, ReadRecord());
  return rec.anchor;
}

Status Pkcs11Backend::StoreRecord(const Anchor& anchor) {
  return pkcs11::StoreAnchor(control_, keys_.at(current_), AnchorRecord{keyset_, current_, anchor});
}

Result<Anchor> Pkcs11Backend::AdvanceAnchor(std::uint64_t seq, const Digest& head_hash) {
  std::lock_guard lock(admin_mu_);
  SK_ASSIGN_OR_RETURN(AnchorRecord old, ReadRecord());
  if (old.anchor.counter == std::numeric_limits<std::uint64_t>::max()) {
    return Status(Code::kResourceExhausted, "anchor_counter_exhausted", "the anchor counter cannot advance");
  }
  Anchor next{seq, head_hash, old.anchor.counter + 1};
  SK_RETURN_IF_ERROR(StoreRecord(next));
  SK_RETURN_IF_ERROR(SyncIfConfigured(sync_dir_));
  return next;
}

BackendInfo Pkcs11Backend::Info() const {
  BackendInfo info;
  info.kind = "pkcs11";
  info.identity = token_.Describe() + ", " + token_.manufacturer + " " + token_.model;
  info.keyset_id = HexEncode(keyset_);
  info.hardware_counter = false;
  info.anchor_location = "private data object '" + std::string(kAnchorLabel) + "' on " + token_.Describe();
  std::shared_lock lock(keys_mu_);
  info.current_generation = current_;
  for (const auto& [g, h] : keys_) info.generations.push_back(g);
  return info;
}

Result<std::uint32_t> Pkcs11Backend::Rotate() {
  std::lock_guard lock(admin_mu_);
  if (current_ == std::numeric_limits<std::uint32_t>::max()) {
    return Status(Code::kResourceExhausted, "generation_exhausted", "no generation after the current one");
  }
  SK_ASSIGN_OR_RETURN(auto on_token, ListMasterKeys(control_));
  if (!on_token.empty() && on_token.back().generation > current_) {
    return Status(Code::kConflict, "generations_changed",
                  "the token holds generation " + std::to_string(on_token.back().generation) +
                      ", made by another process since this backend opened; reopen it");
  }
  const std::uint32_t next = current_ + 1;
  SK_ASSIGN_OR_RETURN(MasterKey key, GenerateMasterKey(control_, next, keyset_));
  auto copy = SessionCopy(control_, key);
  token_keys_[next] = key.handle;
  {
    std::unique_lock keys_lock(keys_mu_);
    keys_[next] = copy.ok() ? *copy : key.handle;
    current_ = next;
  }
  // Nothing may be wrapped under the new generation before its key is durable.
  SK_RETURN_IF_ERROR(SyncIfConfigured(sync_dir_));
  return next;
}

Status Pkcs11Backend::Retire(std::uint32_t generation) {
  std::lock_guard lock(admin_mu_);
  if (generation == current_) {
    return Status(Code::kFailedPrecondition, "is_current",
                  "generation " + std::to_string(generation) + " is current; rotate first");
  }
  auto it = token_keys_.find(generation);
  if (it == token_keys_.end()) {
    return Status(Code::kNotFound, "not_found", "generation " + std::to_string(generation) + " is not live");
  }
  // The anchor must stay verifiable: move its seal off the generation being destroyed.
  SK_ASSIGN_OR_RETURN(AnchorRecord rec, ReadRecord());
  if (rec.generation == generation) SK_RETURN_IF_ERROR(StoreRecord(rec.anchor));
  const ck_object_handle_t token_key = it->second;
  const ck_object_handle_t op_key = keys_.at(generation);
  SK_RETURN_IF_ERROR(DestroyObject(control_, token_key));
  token_keys_.erase(it);
  {
    std::unique_lock keys_lock(keys_mu_);
    keys_.erase(generation);
  }
  if (op_key != token_key) (void)DestroyObject(control_, op_key);  // it would die with the session anyway
  return SyncIfConfigured(sync_dir_);
}

}  // namespace

Result<std::unique_ptr<KeyBackend>> OpenPkcs11Backend(const Pkcs11Config& config) {
  SK_ASSIGN_OR_RETURN(OpenToken token, OpenAndLogin(config));
  const std::string where = token.info.Describe();
  SK_ASSIGN_OR_RETURN(auto keys, ListMasterKeys(token.session));
  if (keys.empty()) {
    return Status(Code::kFailedPrecondition, "master_key_missing",
                  where + " holds no sealkeep master key; run `sealkeep hsm provision`");
  }
  KeyHandles token_keys, op_keys;
  for (const auto& k : keys) {
    SK_RETURN_IF_ERROR(CheckMasterKey(k).WithContext(where));
    token_keys[k.generation] = k.handle;
    auto copy = SessionCopy(token.session, k);
    op_keys[k.generation] = copy.ok() ? *copy : k.handle;
  }
  SK_ASSIGN_OR_RETURN(KeysetId keyset, KeysetOf(keys));
  SK_ASSIGN_OR_RETURN(auto anchors, FindAnchorObjects(token.session));
  if (anchors.empty()) {
    return Status(Code::kFailedPrecondition, "anchor_missing",
                  where + " has master keys but no sealkeep anchor object; run `sealkeep hsm provision`");
  }
  return std::unique_ptr<KeyBackend>(
      new Pkcs11Backend(std::move(token), keyset, std::move(token_keys), std::move(op_keys), config));
}

}  // namespace sk::hsm::pkcs11
