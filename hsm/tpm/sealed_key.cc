#include "hsm/tpm/sealed_key.h"

#include <tss2/tss2_mu.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include "hsm/tpm/esys_context.h"
#include "hsm/tpm/pcr.h"
#include "hsm/tpm/policy.h"
#include "hsm/tpm/primary.h"
#include "hsm/tpm/tpm_errors.h"

namespace sk::hsm::tpm {
namespace {

constexpr char kAuthDomain[] = "sealkeep tpm auth value v1";

std::string GenName(std::uint32_t g) { return "generation " + std::to_string(g); }

Status BootStateChanged(ESYS_CONTEXT* ctx, const SealedFile& file) {
  std::string what;
  auto current = ReadPcrs(ctx, file.pcr_mask);
  if (current.ok()) {
    std::vector<int> diff = DifferingPcrs(file.pcr_mask, file.pcr_values, *current);
    for (std::size_t i = 0; i < diff.size(); ++i) what += (i == 0 ? "" : ", ") + std::to_string(diff[i]);
    if (diff.size() == 1) what = "PCR " + what + " differs";
    if (diff.size() > 1) what = "PCRs " + what + " differ";
  }
  if (what.empty()) what = "the PCRs (" + FormatPcrMask(file.pcr_mask) + ") differ";
  return Status(Code::kSealed, kBootStateChanged,
                "boot state changed: " + what + " from the sealed policy (" + GenName(file.generation) +
                    " of the master key is sealed to sha256 PCRs " + FormatPcrMask(file.pcr_mask) +
                    "; after an accepted firmware or kernel change, re-seal while unsealed)");
}

Status MapUnsealError(ESYS_CONTEXT* ctx, const SealedFile& file, TSS2_RC rc) {
  TSS2_RC base = BaseRc(rc);
  if (base == TPM2_RC_POLICY_FAIL) return BootStateChanged(ctx, file);
  if (base == TPM2_RC_AUTH_FAIL || base == TPM2_RC_BAD_AUTH) {
    return Status(Code::kUnauthenticated, kAuthIncorrect,
                  "the TPM auth value for " + GenName(file.generation) +
                      " of the master key is incorrect (each wrong try counts toward the TPM's "
                      "dictionary-attack lockout)");
  }
  return TpmError("TPM2_Unseal of " + GenName(file.generation), rc);
}

template <typename T, typename F>
Result<T> Unmarshal(const Bytes& bytes, F fn, const char* what) {
  T out{};
  std::size_t offset = 0;
  TSS2_RC rc = fn(bytes.data(), bytes.size(), &offset, &out);
  if (rc != TSS2_RC_SUCCESS || offset != bytes.size()) {
    return Status(Code::kCorruption, kMalformedState, std::string("sealed key file: bad ") + what);
  }
  return out;
}

template <typename T, typename F>
Result<Bytes> Marshal(const T& in, F fn) {
  std::array<std::uint8_t, kMaxTpmArea> buf{};
  std::size_t n = 0;
  TSS2_RC rc = fn(&in, buf.data(), buf.size(), &n);
  if (rc != TSS2_RC_SUCCESS) return TpmError("marshalling a sealed object", rc);
  return Bytes(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
}

}  // namespace

Result<SealPolicy> PolicyForCurrentPcrs(ESYS_CONTEXT* ctx, std::uint32_t pcr_mask, bool auth_required) {
  SealPolicy p;
  p.pcr_mask = pcr_mask;
  p.auth_required = auth_required;
  SK_ASSIGN_OR_RETURN(p.pcr_values, ReadPcrs(ctx, pcr_mask));
  p.pcr_composite = PcrComposite(p.pcr_values);
  return p;
}

SealPolicy PolicyOf(const SealedFile& file) {
  SealPolicy p;
  p.pcr_mask = file.pcr_mask;
  p.pcr_values = file.pcr_values;
  p.pcr_composite = file.pcr_composite;
  p.auth_required = file.auth_required();
  return p;
}

SecretBytes DeriveAuthValue(const SecretBytes& credential) {
  Sha256Hasher h;
  h.Update(AsBytes(kAuthDomain));
  h.Update(credential.Expose());
  Digest d = h.Finish();
  SecretBytes out = SecretBytes::CopyFrom(d);
  Wipe(d.data(), d.size());
  return out;
}

Result<SealedFile> SealGeneration(ESYS_CONTEXT* ctx, ESYS_TR primary, const SealPolicy& policy,
                                  const SecretBytes& auth_value, const SealedPayload& payload) {
  if (policy.auth_required && auth_value.size() != kDigestSize)
    return Internal("auth value must be 32 bytes");
  SK_ASSIGN_OR_RETURN(SecretBytes data, EncodePayload(payload));

  TPM2B_PUBLIC in_public{};
  TPMT_PUBLIC& pub = in_public.publicArea;
  pub.type = TPM2_ALG_KEYEDHASH;
  pub.nameAlg = TPM2_ALG_SHA256;
  pub.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_ADMINWITHPOLICY;
  if (!policy.auth_required) pub.objectAttributes |= TPMA_OBJECT_NODA;
  Digest policy_digest = PolicyDigest(policy.pcr_mask, policy.pcr_composite);
  pub.authPolicy.size = kDigestSize;
  std::memcpy(pub.authPolicy.buffer, policy_digest.data(), kDigestSize);
  pub.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;

  TPM2B_SENSITIVE_CREATE in_sensitive{};
  if (policy.auth_required) {
    std::size_t n = AuthSize(auth_value.Expose().data(), auth_value.size());
    in_sensitive.sensitive.userAuth.size = static_cast<UINT16>(n);
    std::memcpy(in_sensitive.sensitive.userAuth.buffer, auth_value.Expose().data(), n);
  }
  in_sensitive.sensitive.data.size = static_cast<UINT16>(data.size());
  std::memcpy(in_sensitive.sensitive.data.buffer, data.Expose().data(), data.size());

  TPM2B_PRIVATE* out_private = nullptr;
  TPM2B_PUBLIC* out_public = nullptr;
  TSS2_RC rc = TSS2_RC_SUCCESS;
  {
    auto session = StartSaltedSession(ctx, primary, TPM2_SE_HMAC, TPMA_SESSION_DECRYPT);
    if (!session.ok()) {
      Wipe(&in_sensitive, sizeof in_sensitive);
      return session.status();
    }
    TPM2B_DATA outside{};
    TPML_PCR_SELECTION creation_pcr{};
    rc = Esys_Create(ctx, primary, session->get(), ESYS_TR_NONE, ESYS_TR_NONE, &in_sensitive, &in_public,
                     &outside, &creation_pcr, &out_private, &out_public, nullptr, nullptr, nullptr);
  }
  Wipe(&in_sensitive, sizeof in_sensitive);
  if (rc != TSS2_RC_SUCCESS) return TpmError("TPM2_Create of " + GenName(payload.generation), rc);
  EsysPtr<TPM2B_PRIVATE> priv_guard(out_private);
  EsysPtr<TPM2B_PUBLIC> pub_guard(out_public);

  SealedFile file;
  file.keyset_id = payload.keyset_id;
  file.generation = payload.generation;
  file.flags = policy.auth_required ? kFlagAuthValue : 0;
  file.pcr_mask = policy.pcr_mask;
  file.pcr_values = policy.pcr_values;
  file.pcr_composite = policy.pcr_composite;
  SK_ASSIGN_OR_RETURN(file.public_area, Marshal(*out_public, Tss2_MU_TPM2B_PUBLIC_Marshal));
  SK_ASSIGN_OR_RETURN(file.private_area, Marshal(*out_private, Tss2_MU_TPM2B_PRIVATE_Marshal));
  return file;
}

Result<SealedPayload> UnsealGeneration(ESYS_CONTEXT* ctx, ESYS_TR primary, const SealedFile& file,
                                       const SecretBytes& auth_value) {
  SK_ASSIGN_OR_RETURN(TPM2B_PUBLIC pub, Unmarshal<TPM2B_PUBLIC>(
                                            file.public_area, Tss2_MU_TPM2B_PUBLIC_Unmarshal, "public area"));
  SK_ASSIGN_OR_RETURN(
      TPM2B_PRIVATE priv,
      Unmarshal<TPM2B_PRIVATE>(file.private_area, Tss2_MU_TPM2B_PRIVATE_Unmarshal, "private area"));
  Digest expected = PolicyDigest(file.pcr_mask, file.pcr_composite);
  const TPM2B_DIGEST& actual = pub.publicArea.authPolicy;
  if (pub.publicArea.type != TPM2_ALG_KEYEDHASH || actual.size != kDigestSize ||
      !std::equal(expected.begin(), expected.end(), actual.buffer)) {
    return Status(Code::kCorruption, kMalformedState,
                  "sealed key file of " + GenName(file.generation) +
                      ": the recorded PCR policy does not match the sealed object's policy");
  }

  ESYS_TR obj_tr = ESYS_TR_NONE;
  TSS2_RC rc = Esys_Load(ctx, primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, &obj_tr);
  if (rc != TSS2_RC_SUCCESS) {
    TSS2_RC base = BaseRc(rc);
    if (base == TPM2_RC_INTEGRITY || base == TPM2_RC_VALUE || base == TPM2_RC_SIZE || base == TPM2_RC_KEY ||
        base == TPM2_RC_BINDING) {
      return Status(Code::kCorruption, kWrongTpm,
                    "the sealed object of " + GenName(file.generation) +
                        " does not load under this TPM's primary key: it was sealed by another TPM, or the "
                        "owner hierarchy was cleared since (" +
                        DescribeRc(rc) + ")");
    }
    return TpmError("TPM2_Load of " + GenName(file.generation), rc);
  }
  ScopedTr obj(ctx, obj_tr, ScopedTr::Kind::kFlush);

  TPM2B_SENSITIVE_DATA* out = nullptr;
  {
    SK_ASSIGN_OR_RETURN(ScopedTr session,
                        StartSaltedSession(ctx, primary, TPM2_SE_POLICY, TPMA_SESSION_ENCRYPT));
    SK_RETURN_IF_ERROR(ApplyPolicy(ctx, session.get(), file.pcr_mask));
    if (file.auth_required()) {
      SK_RETURN_IF_ERROR(SetAuth(ctx, obj.get(), auth_value.Expose().data(), auth_value.size()));
    }
    rc = Esys_Unseal(ctx, obj.get(), session.get(), ESYS_TR_NONE, ESYS_TR_NONE, &out);
  }
  obj.Reset();
  if (rc != TSS2_RC_SUCCESS) return MapUnsealError(ctx, file, rc);
  auto payload = ParsePayload(
      std::span<const std::uint8_t>(out->buffer, std::min<std::size_t>(out->size, sizeof out->buffer)));
  Wipe(out, sizeof *out);
  Esys_Free(out);
  // ESYS decrypted the response in its own buffer: overwrite it (see DescribeTpm).
  (void)DescribeTpm(ctx);
  if (!payload.ok()) return payload.status();
  if (payload->keyset_id != file.keyset_id || payload->generation != file.generation) {
    return Status(Code::kCorruption, kWrongTpm,
                  "the key sealed in " + SealedFileName(file.generation) +
                      " belongs to another keyset or generation than the file says");
  }
  return payload;
}

}  // namespace sk::hsm::tpm
