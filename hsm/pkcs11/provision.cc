#include "hsm/pkcs11/provision.h"

#include "crypto/random.h"
#include "crypto/reasons.h"
#include "hsm/credential.h"
#include "hsm/pkcs11/anchor_object.h"
#include "hsm/pkcs11/errors.h"
#include "hsm/pkcs11/master_key.h"
#include "hsm/pkcs11/open_token.h"
#include "hsm/pkcs11/sync_dir.h"

namespace sk::hsm::pkcs11 {
namespace {

Status PinRangeOr(ck_rv_t rv, const char* step) {
  if (rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_INVALID || rv == CKR_PIN_TOO_WEAK) {
    return Status(Code::kInvalidArgument, "pin_invalid",
                  std::string(step) + ": the token does not accept that PIN (" + RvName(rv) + ")");
  }
  return RvError(rv, step);
}

}  // namespace

Result<bool> TokenExists(const Pkcs11Config& config) {
  SK_ASSIGN_OR_RETURN(auto module, LoadModule(config.module));
  auto found = FindToken(*module, config.token_label);
  if (found.ok()) return true;
  if (found.status().reason() == sk::reason::kTokenNotFound) return false;
  return found.status();
}

Result<bool> InitToken(const ProvisionOptions& o) {
  const std::string& label = o.config.token_label;
  SK_ASSIGN_OR_RETURN(auto module, LoadModule(o.config.module));
  auto existing = FindToken(*module, label);
  if (existing.ok()) return false;
  if (existing.status().reason() != "token_not_found") return existing.status();
  if (o.so_pin_file.empty() && o.so_pin == nullptr) {
    return Status(Code::kInvalidArgument, "so_pin_missing", "initialising a token needs the SO PIN file");
  }
  SK_ASSIGN_OR_RETURN(std::string padded, PaddedLabel(label));
  SecretBytes so_pin;
  SecretBytes user_pin;
  if (o.so_pin != nullptr) {
    so_pin = o.so_pin->Clone();
  } else {
    SK_ASSIGN_OR_RETURN(so_pin, ReadCredentialFile(o.so_pin_file));
  }
  if (o.user_pin != nullptr) {
    user_pin = o.user_pin->Clone();
  } else {
    SK_ASSIGN_OR_RETURN(user_pin, ReadCredential(o.config.pin_file, kPinCredentialName));
  }
  SK_ASSIGN_OR_RETURN(ck_slot_id_t slot, FindFreeSlot(*module));
  auto so = so_pin.Expose();
  ck_rv_t rv =
      module->fn().C_InitToken(slot, so.data(), so.size(), reinterpret_cast<unsigned char*>(padded.data()));
  if (rv != CKR_OK) return PinRangeOr(rv, "C_InitToken");
  // SoftHSM2 moves a token to a new slot number when it is initialised: find it again.
  SK_ASSIGN_OR_RETURN(TokenInfo token, FindToken(*module, label));
  SK_ASSIGN_OR_RETURN(Session session, OpenSession(module, token.slot, /*rw=*/true));
  SK_RETURN_IF_ERROR(Login(session, CKU_SO, so_pin));
  auto pin = user_pin.Expose();
  rv = session.fn().C_InitPIN(session.handle(), pin.data(), pin.size());
  session.fn().C_Logout(session.handle());  // our own fresh token: no one else is logged in
  if (rv != CKR_OK) return PinRangeOr(rv, "C_InitPIN");
  return true;
}

namespace {

AnchorStatus InspectAnchor(const Session& session, const std::vector<MasterKey>& keys) {
  AnchorStatus a;
  auto objects = FindAnchorObjects(session);
  if (!objects.ok()) {
    a.present = true;
    a.problem = std::string(objects.status().message());
    return a;
  }
  a.objects = objects->size();
  if (objects->empty()) return a;
  a.present = true;
  KeyHandles live;
  for (const auto& k : keys) {
    if (CheckMasterKey(k).ok()) live[k.generation] = k.handle;
  }
  auto keyset = KeysetOf(keys);
  if (!keyset.ok()) {
    a.problem = "the master keys do not agree on a keyset id";
    return a;
  }
  auto rec = ReadAnchor(session, *keyset, live);
  if (!rec.ok()) {
    a.problem = std::string(rec.status().message());
    return a;
  }
  a.verifies = true;
  a.value = rec->anchor;
  a.sealed_by = rec->generation;
  return a;
}

Result<TokenStatus> Inspect(const OpenToken& t) {
  TokenStatus s;
  s.module = t.module->path();
  s.label = t.info.label;
  s.serial = t.info.serial;
  s.manufacturer = t.info.manufacturer;
  s.model = t.info.model;
  s.user_pin_count_low = (t.info.flags & CKF_USER_PIN_COUNT_LOW) != 0;
  s.user_pin_final_try = (t.info.flags & CKF_USER_PIN_FINAL_TRY) != 0;
  s.user_pin_locked = (t.info.flags & CKF_USER_PIN_LOCKED) != 0;
  SK_ASSIGN_OR_RETURN(auto keys, ListMasterKeys(t.session));
  for (const auto& k : keys) {
    MasterKeyStatus m{
        k.generation,        k.label, HexEncode(k.id), k.sensitive, k.always_sensitive, k.extractable,
        k.never_extractable, k.local, false,           ""};
    Status st = CheckMasterKey(k);
    m.usable = st.ok();
    m.problem = std::string(st.message());
    if (m.usable) s.current_generation = k.generation;
    s.keys.push_back(std::move(m));
  }
  if (auto keyset = KeysetOf(keys); keyset.ok()) s.keyset_id = HexEncode(*keyset);
  s.anchor = InspectAnchor(t.session, keys);
  return s;
}

}  // namespace

Result<ProvisionReport> Provision(const ProvisionOptions& options) {
  ProvisionReport report;
  if (options.init) {
    SK_ASSIGN_OR_RETURN(report.token_initialised, InitToken(options));
  }
  SK_ASSIGN_OR_RETURN(OpenToken t, OpenAndLogin(options.config, options.user_pin));
  SK_ASSIGN_OR_RETURN(auto keys, ListMasterKeys(t.session));
  if (keys.empty()) {
    KeysetId keyset{};
    SK_RETURN_IF_ERROR(FillRandom(keyset));
    SK_ASSIGN_OR_RETURN(MasterKey k, GenerateMasterKey(t.session, 1, keyset));
    keys.push_back(std::move(k));
    report.master_key_created = true;
  }
  for (const auto& k : keys) SK_RETURN_IF_ERROR(CheckMasterKey(k).WithContext(t.info.Describe()));
  SK_ASSIGN_OR_RETURN(KeysetId keyset, KeysetOf(keys));
  SK_ASSIGN_OR_RETURN(auto anchors, FindAnchorObjects(t.session));
  if (anchors.empty()) {
    const MasterKey& current = keys.back();
    SK_RETURN_IF_ERROR(
        StoreAnchor(t.session, current.handle, AnchorRecord{keyset, current.generation, Anchor{}}));
    report.anchor_created = true;
  }
  if (report.token_initialised || report.master_key_created || report.anchor_created) {
    SK_RETURN_IF_ERROR(SyncIfConfigured(options.config.sync_dir));
  }
  SK_ASSIGN_OR_RETURN(report.status, Inspect(t));
  return report;
}

Result<TokenStatus> InspectToken(const Pkcs11Config& config) {
  SK_ASSIGN_OR_RETURN(OpenToken t, OpenAndLogin(config));
  return Inspect(t);
}

}  // namespace sk::hsm::pkcs11
