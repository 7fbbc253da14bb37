#include "agent/secrets/keys.h"

#include "crypto/aead.h"
#include "crypto/random.h"
#include "hsm/wrapped_blob_format.h"

namespace sk::secrets {
namespace {

Bytes Bound(std::string_view domain, ByteView store_id, std::string_view path, std::uint64_t version) {
  ByteWriter w;
  w.Raw(domain);
  w.U8(0);
  w.Raw(store_id);
  w.Var16(path);
  w.U64(version);
  return std::move(w).Take();
}

Bytes StoreBound(std::string_view domain, ByteView store_id) {
  ByteWriter w;
  w.Raw(domain);
  w.U8(0);
  w.Raw(store_id);
  return std::move(w).Take();
}

}  // namespace

Bytes ValueAad(ByteView store_id, std::string_view path, std::uint64_t version) {
  return Bound("sealkeep value v1", store_id, path, version);
}
Bytes DekAad(ByteView store_id, std::string_view path, std::uint64_t version) {
  return Bound("sealkeep dek v1", store_id, path, version);
}
Bytes JournalKeyAad(ByteView store_id) { return StoreBound("sealkeep journal key v1", store_id); }
Bytes AuditKeyAad(ByteView store_id) { return StoreBound("sealkeep audit key v1", store_id); }

Result<SealedValue> SealValue(hsm::KeyBackend& backend, ByteView store_id, std::string_view path,
                              std::uint64_t version, ByteView value) {
  SealedValue out;
  SK_ASSIGN_OR_RETURN(out.dek, RandomSecret(kAeadKeySize));
  SK_ASSIGN_OR_RETURN(out.ciphertext, AeadSeal(out.dek, ValueAad(store_id, path, version), value));
  SK_ASSIGN_OR_RETURN(out.wrapped_dek, backend.Wrap(out.dek, DekAad(store_id, path, version)));
  return out;
}

std::uint32_t WrappedGeneration(ByteView wrapped) {
  auto parts = hsm::ParseWrappedBlob(wrapped);
  return parts.ok() ? parts->header.generation : 0;
}

}  // namespace sk::secrets
