#include "hsm/tpm/nv_anchor.h"

#include <cstdio>
#include <cstring>
#include <string>

#include "hsm/tpm/primary.h"
#include "hsm/tpm/tpm_errors.h"

namespace sk::hsm::tpm {
namespace {

constexpr UINT16 kCounterSize = 8;

Result<ScopedTr> RefIndex(ESYS_CONTEXT* ctx, std::uint32_t handle) {
  ESYS_TR tr = ESYS_TR_NONE;
  TSS2_RC rc = Esys_TR_FromTPMPublic(ctx, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr);
  if (rc != TSS2_RC_SUCCESS) {
    if (BaseRc(rc) == TPM2_RC_HANDLE) {
      return Status(Code::kFailedPrecondition, kNotProvisioned,
                    "NV index " + HandleHex(handle) + " is not defined (run `sealkeep tpm provision`)");
    }
    return TpmError("reading NV index " + HandleHex(handle), rc);
  }
  return ScopedTr(ctx, tr, ScopedTr::Kind::kClose);
}

Status CheckPublic(ESYS_CONTEXT* ctx, ESYS_TR tr, std::uint32_t handle, TPMA_NV want, UINT16 size) {
  TPM2B_NV_PUBLIC* pub = nullptr;
  TSS2_RC rc = Esys_NV_ReadPublic(ctx, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, nullptr);
  if (rc != TSS2_RC_SUCCESS) return TpmError("TPM2_NV_ReadPublic of " + HandleHex(handle), rc);
  EsysPtr<TPM2B_NV_PUBLIC> guard(pub);
  // TPMA_NV_WRITTEN and the lock bits change with use; the rest is fixed at definition.
  TPMA_NV mask = static_cast<TPMA_NV>(~(TPMA_NV_WRITTEN | TPMA_NV_WRITELOCKED | TPMA_NV_READLOCKED));
  if ((pub->nvPublic.attributes & mask) != want || pub->nvPublic.dataSize != size ||
      pub->nvPublic.nameAlg != TPM2_ALG_SHA256) {
    return Status(
        Code::kCorruption, kWrongTpm,
        "NV index " + HandleHex(handle) +
            " is defined with other attributes or size than sealkeep's: it belongs to something else "
            "(pick other indices, or undefine it if it is a leftover)");
  }
  return OkStatus();
}

Status DefineIndex(ESYS_CONTEXT* ctx, ESYS_TR primary, std::uint32_t handle, TPMA_NV attributes, UINT16 size,
                   const SecretBytes& anchor_auth, const SecretBytes& owner_auth) {
  TPM2B_NV_PUBLIC pub{};
  pub.nvPublic.nvIndex = handle;
  pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
  pub.nvPublic.attributes = attributes;
  pub.nvPublic.dataSize = size;
  TPM2B_AUTH auth{};
  auth.size = static_cast<UINT16>(AuthSize(anchor_auth.Expose().data(), anchor_auth.size()));
  std::memcpy(auth.buffer, anchor_auth.Expose().data(), auth.size);
  ESYS_TR tr = ESYS_TR_NONE;
  TSS2_RC rc = TSS2_RC_SUCCESS;
  {
    // Authorises the owner by HMAC and encrypts `auth` (the first parameter) on its way in.
    auto session = StartSaltedSession(ctx, primary, TPM2_SE_HMAC, TPMA_SESSION_DECRYPT);
    Status st = session.ok() ? SetAuth(ctx, ESYS_TR_RH_OWNER, owner_auth.Expose().data(), owner_auth.size())
                             : session.status();
    if (!st.ok()) {
      Wipe(&auth, sizeof auth);
      return st;
    }
    rc = Esys_NV_DefineSpace(ctx, ESYS_TR_RH_OWNER, session->get(), ESYS_TR_NONE, ESYS_TR_NONE, &auth, &pub,
                             &tr);
    (void)SetAuth(ctx, ESYS_TR_RH_OWNER, nullptr, 0);
  }
  Wipe(&auth, sizeof auth);
  if (rc != TSS2_RC_SUCCESS) {
    TSS2_RC base = BaseRc(rc);
    if (base == TPM2_RC_NV_DEFINED) {
      return Status(Code::kAlreadyExists, "already_exists",
                    "NV index " + HandleHex(handle) + " is already defined");
    }
    if (base == TPM2_RC_BAD_AUTH || base == TPM2_RC_AUTH_FAIL) {
      return Status(Code::kUnauthenticated, kAuthIncorrect,
                    "the owner hierarchy auth is wrong (give it with --owner-auth-file): " + DescribeRc(rc));
    }
    if (base == TPM2_RC_NV_SPACE) {
      return Status(Code::kResourceExhausted, kTpmError,
                    "the TPM has no NV space left for " + HandleHex(handle));
    }
    return TpmError("TPM2_NV_DefineSpace of " + HandleHex(handle), rc);
  }
  Esys_TR_Close(ctx, &tr);
  return OkStatus();
}

}  // namespace

std::string HandleHex(std::uint32_t handle) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", handle);
  return buf;
}

Result<bool> NvIndexDefined(ESYS_CONTEXT* ctx, std::uint32_t handle) {
  // A capability query, not TPM2_NV_ReadPublic: asking about an absent index is not an
  // error then (and tpm2-tss logs none).
  TPMI_YES_NO more = TPM2_NO;
  TPMS_CAPABILITY_DATA* raw = nullptr;
  TSS2_RC rc = Esys_GetCapability(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES, handle, 1,
                                  &more, &raw);
  if (rc != TSS2_RC_SUCCESS) return TpmError("TPM2_GetCapability (NV indices)", rc);
  EsysPtr<TPMS_CAPABILITY_DATA> data(raw);
  const TPML_HANDLE& handles = data->data.handles;
  return handles.count >= 1 && handles.handle[0] == handle;
}

Status DefineCounterIndex(ESYS_CONTEXT* ctx, ESYS_TR primary, std::uint32_t handle,
                          const SecretBytes& anchor_auth, const SecretBytes& owner_auth) {
  return DefineIndex(ctx, primary, handle, kCounterAttributes, kCounterSize, anchor_auth, owner_auth);
}

Status DefineAnchorIndex(ESYS_CONTEXT* ctx, ESYS_TR primary, std::uint32_t handle,
                         const SecretBytes& anchor_auth, const SecretBytes& owner_auth) {
  return DefineIndex(ctx, primary, handle, kAnchorAttributes, static_cast<UINT16>(kNvAnchorSize), anchor_auth,
                     owner_auth);
}

Result<std::unique_ptr<NvAnchor>> NvAnchor::Attach(ESYS_CONTEXT* ctx, std::uint32_t counter_index,
                                                   std::uint32_t anchor_index) {
  std::unique_ptr<NvAnchor> nv(new NvAnchor());
  nv->ctx_ = ctx;
  nv->counter_index_ = counter_index;
  nv->anchor_index_ = anchor_index;
  SK_ASSIGN_OR_RETURN(nv->counter_, RefIndex(ctx, counter_index));
  SK_ASSIGN_OR_RETURN(nv->anchor_, RefIndex(ctx, anchor_index));
  SK_RETURN_IF_ERROR(CheckPublic(ctx, nv->counter_.get(), counter_index, kCounterAttributes, kCounterSize));
  SK_RETURN_IF_ERROR(CheckPublic(ctx, nv->anchor_.get(), anchor_index, kAnchorAttributes, kNvAnchorSize));
  return nv;
}

Status NvAnchor::SetAnchorAuth(const SecretBytes& anchor_auth) {
  SK_RETURN_IF_ERROR(SetAuth(ctx_, counter_.get(), anchor_auth.Expose().data(), anchor_auth.size()));
  return SetAuth(ctx_, anchor_.get(), anchor_auth.Expose().data(), anchor_auth.size());
}

Status NvAnchor::MapError(std::string_view what, std::uint32_t handle, TSS2_RC rc, ESYS_TR auth) const {
  TSS2_RC base = BaseRc(rc);
  if ((base == TPM2_RC_BAD_AUTH || base == TPM2_RC_AUTH_FAIL) && auth == ESYS_TR_RH_OWNER) {
    return Status(Code::kUnauthenticated, kAuthIncorrect,
                  "reading NV index " + HandleHex(handle) + " as owner: the owner hierarchy auth is wrong");
  }
  if (base == TPM2_RC_BAD_AUTH || base == TPM2_RC_AUTH_FAIL) {
    return Status(Code::kCorruption, kWrongTpm,
                  "NV index " + HandleHex(handle) +
                      " does not accept this keyset's anchor auth value: it was redefined by someone else");
  }
  if (base == TPM2_RC_NV_UNINITIALIZED) {
    return Status(Code::kFailedPrecondition, kNotProvisioned,
                  "NV index " + HandleHex(handle) + " was never written (run `sealkeep tpm provision`)");
  }
  if (base == TPM2_RC_NV_RATE) {
    return Status(Code::kResourceExhausted, kTpmError,
                  std::string(what) + " of NV index " + HandleHex(handle) +
                      ": the TPM rate-limits NV writes to protect its flash; retry later");
  }
  return TpmError(std::string(what) + " of NV index " + HandleHex(handle), rc);
}

Result<std::uint64_t> NvAnchor::ReadCounter(ESYS_TR auth, ESYS_TR session) {
  TPM2B_MAX_NV_BUFFER* data = nullptr;
  TSS2_RC rc =
      Esys_NV_Read(ctx_, auth, counter_.get(), session, ESYS_TR_NONE, ESYS_TR_NONE, kCounterSize, 0, &data);
  if (rc != TSS2_RC_SUCCESS) return MapError("TPM2_NV_Read", counter_index_, rc, auth);
  EsysPtr<TPM2B_MAX_NV_BUFFER> guard(data);
  if (data->size != kCounterSize) {
    return Status(Code::kUnavailable, kTpmError,
                  "TPM2_NV_Read of " + HandleHex(counter_index_) + " returned a short value");
  }
  std::uint64_t v = 0;
  for (int i = 0; i < kCounterSize; ++i) v = (v << 8) | data->buffer[i];
  return v;
}

Result<NvAnchorContents> NvAnchor::ReadContents(ESYS_TR auth, ESYS_TR session) {
  TPM2B_MAX_NV_BUFFER* data = nullptr;
  TSS2_RC rc = Esys_NV_Read(ctx_, auth, anchor_.get(), session, ESYS_TR_NONE, ESYS_TR_NONE,
                            static_cast<UINT16>(kNvAnchorSize), 0, &data);
  if (rc != TSS2_RC_SUCCESS) return MapError("TPM2_NV_Read", anchor_index_, rc, auth);
  EsysPtr<TPM2B_MAX_NV_BUFFER> guard(data);
  return ParseNvAnchor(ByteView(data->buffer, std::min<std::size_t>(data->size, sizeof data->buffer)));
}

Result<Anchor> NvAnchor::Read(const KeysetId& keyset) {
  SK_ASSIGN_OR_RETURN(ScopedTr session, StartHmacSession(ctx_));
  SK_ASSIGN_OR_RETURN(std::uint64_t hw, ReadCounter(counter_.get(), session.get()));
  SK_ASSIGN_OR_RETURN(NvAnchorContents c, ReadContents(anchor_.get(), session.get()));
  if (c.keyset_id != keyset) {
    return Status(Code::kCorruption, kWrongTpm,
                  "NV index " + HandleHex(anchor_index_) + " holds the anchor of another keyset");
  }
  if (c.anchor.counter > hw) {
    return Status(Code::kCorruption, kMalformedState,
                  "NV anchor records counter " + std::to_string(c.anchor.counter) +
                      " but the NV counter is at " + std::to_string(hw) + ": the counter index was replaced");
  }
  Anchor a = c.anchor;
  a.counter = hw;
  return a;
}

Result<Anchor> NvAnchor::Advance(const KeysetId& keyset, std::uint64_t seq, const Digest& head_hash) {
  SK_ASSIGN_OR_RETURN(ScopedTr session, StartHmacSession(ctx_));
  TSS2_RC rc =
      Esys_NV_Increment(ctx_, counter_.get(), counter_.get(), session.get(), ESYS_TR_NONE, ESYS_TR_NONE);
  if (rc != TSS2_RC_SUCCESS) return MapError("TPM2_NV_Increment", counter_index_, rc, counter_.get());
  SK_ASSIGN_OR_RETURN(std::uint64_t hw, ReadCounter(counter_.get(), session.get()));
  NvAnchorContents c;
  c.keyset_id = keyset;
  c.anchor.seq = seq;
  c.anchor.head_hash = head_hash;
  c.anchor.counter = hw;
  Bytes bytes = EncodeNvAnchor(c);
  TPM2B_MAX_NV_BUFFER buf{};
  buf.size = static_cast<UINT16>(bytes.size());
  std::memcpy(buf.buffer, bytes.data(), bytes.size());
  rc = Esys_NV_Write(ctx_, anchor_.get(), anchor_.get(), session.get(), ESYS_TR_NONE, ESYS_TR_NONE, &buf, 0);
  if (rc != TSS2_RC_SUCCESS) return MapError("TPM2_NV_Write", anchor_index_, rc, anchor_.get());
  return c.anchor;
}

Result<NvAnchorContents> NvAnchor::ReadAsOwner(const SecretBytes& owner_auth,
                                               std::uint64_t* hardware_counter) {
  SK_ASSIGN_OR_RETURN(ScopedTr session, StartHmacSession(ctx_));
  SK_RETURN_IF_ERROR(SetAuth(ctx_, ESYS_TR_RH_OWNER, owner_auth.Expose().data(), owner_auth.size()));
  auto hw = ReadCounter(ESYS_TR_RH_OWNER, session.get());
  auto contents =
      hw.ok() ? ReadContents(ESYS_TR_RH_OWNER, session.get()) : Result<NvAnchorContents>(hw.status());
  (void)SetAuth(ctx_, ESYS_TR_RH_OWNER, nullptr, 0);
  if (!contents.ok()) return contents.status();
  if (hardware_counter != nullptr) *hardware_counter = *hw;
  return contents;
}

}  // namespace sk::hsm::tpm
