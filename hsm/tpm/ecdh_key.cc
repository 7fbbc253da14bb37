#include "hsm/tpm/ecdh_key.h"

#include <tss2/tss2_mu.h>

#include <array>
#include <cstring>

#include "hsm/tpm/esys_context.h"
#include "hsm/tpm/primary.h"
#include "hsm/tpm/sealed_file_format.h"
#include "hsm/tpm/tpm_errors.h"

namespace sk::hsm::tpm {
namespace {

constexpr std::string_view kMagic = "SKTE";

Status Malformed(const std::string& what) {
  return Status(Code::kCorruption, kMalformedState, "TPM ECDH key: " + what);
}

TPM2B_PUBLIC EcdhTemplate() {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& p = t.publicArea;
  p.type = TPM2_ALG_ECC;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                       TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_DECRYPT;
  TPMS_ECC_PARMS& ecc = p.parameters.eccDetail;
  ecc.symmetric.algorithm = TPM2_ALG_NULL;
  ecc.scheme.scheme = TPM2_ALG_NULL;
  ecc.curveID = TPM2_ECC_NIST_P256;
  ecc.kdf.scheme = TPM2_ALG_NULL;
  return t;
}

// 0x04 || x || y, each coordinate left-padded to 32 bytes.
Result<Bytes> Uncompressed(const TPMS_ECC_POINT& q) {
  if (q.x.size > 32 || q.y.size > 32) return Malformed("a coordinate is longer than 32 bytes");
  Bytes out(65, 0);
  out[0] = 0x04;
  std::memcpy(out.data() + 1 + (32 - q.x.size), q.x.buffer, q.x.size);
  std::memcpy(out.data() + 33 + (32 - q.y.size), q.y.buffer, q.y.size);
  return out;
}

struct KeyAreas {
  TPM2B_PUBLIC pub{};
  TPM2B_PRIVATE priv{};
};

Result<KeyAreas> ParseBlob(ByteView blob) {
  ByteReader r(blob);
  ByteView magic;
  ByteView pub;
  ByteView priv;
  if (!r.Raw(kMagic.size(), magic) || std::memcmp(magic.data(), kMagic.data(), kMagic.size()) != 0 ||
      !r.Var16(pub, kMaxTpmArea) || !r.Var16(priv, kMaxTpmArea) || !r.AtEnd()) {
    return Malformed("the blob does not parse");
  }
  KeyAreas k;
  std::size_t off = 0;
  if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(pub.data(), pub.size(), &off, &k.pub) != TSS2_RC_SUCCESS ||
      off != pub.size())
    return Malformed("bad public area");
  off = 0;
  if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(priv.data(), priv.size(), &off, &k.priv) != TSS2_RC_SUCCESS ||
      off != priv.size())
    return Malformed("bad private area");
  const TPMT_PUBLIC& p = k.pub.publicArea;
  if (p.type != TPM2_ALG_ECC || p.parameters.eccDetail.curveID != TPM2_ECC_NIST_P256 ||
      (p.objectAttributes & TPMA_OBJECT_DECRYPT) == 0 || (p.objectAttributes & TPMA_OBJECT_RESTRICTED) != 0) {
    return Malformed("not an unrestricted P-256 decrypt key");
  }
  return k;
}

class TpmEcdhKey final : public EcdhPrivateKey {
 public:
  TpmEcdhKey(LendEsys lend, std::uint32_t primary_handle, KeyAreas areas, Bytes public_key)
      : lend_(std::move(lend)),
        primary_handle_(primary_handle),
        areas_(areas),
        public_key_(std::move(public_key)) {}
  const Bytes& public_key() const override { return public_key_; }
  Result<SecretBytes> SharedSecret(ByteView peer_public) override {
    if (peer_public.size() != 65 || peer_public[0] != 0x04)
      return Malformed("the peer point is not uncompressed");
    return lend_([&](ESYS_CONTEXT* ctx) { return ZGen(ctx, peer_public); });
  }

 private:
  Result<SecretBytes> ZGen(ESYS_CONTEXT* ctx, ByteView peer_public);
  LendEsys lend_;
  std::uint32_t primary_handle_;
  KeyAreas areas_;
  Bytes public_key_;
};

Result<SecretBytes> TpmEcdhKey::ZGen(ESYS_CONTEXT* ctx, ByteView peer_public) {
  SK_ASSIGN_OR_RETURN(ScopedTr primary, LoadPrimary(ctx, primary_handle_));
  ESYS_TR key_tr = ESYS_TR_NONE;
  TSS2_RC rc = Esys_Load(ctx, primary.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &areas_.priv,
                         &areas_.pub, &key_tr);
  if (rc != TSS2_RC_SUCCESS) return TpmError("TPM2_Load of the ECDH key", rc);
  ScopedTr key(ctx, key_tr, ScopedTr::Kind::kFlush);
  TPM2B_ECC_POINT in{};
  in.point.x.size = 32;
  in.point.y.size = 32;
  std::memcpy(in.point.x.buffer, peer_public.data() + 1, 32);
  std::memcpy(in.point.y.buffer, peer_public.data() + 33, 32);
  TPM2B_ECC_POINT* out = nullptr;
  {
    SK_ASSIGN_OR_RETURN(ScopedTr session,
                        StartSaltedSession(ctx, primary.get(), TPM2_SE_HMAC, TPMA_SESSION_ENCRYPT));
    rc = Esys_ECDH_ZGen(ctx, key.get(), session.get(), ESYS_TR_NONE, ESYS_TR_NONE, &in, &out);
  }
  if (rc != TSS2_RC_SUCCESS) return TpmError("TPM2_ECDH_ZGen", rc);
  EsysPtr<TPM2B_ECC_POINT> guard(out);
  SecretBytes z(32);
  const TPM2B_ECC_PARAMETER& x = out->point.x;
  if (x.size > 32) {
    Wipe(out, sizeof *out);
    return Malformed("the TPM's shared point is longer than 32 bytes");
  }
  std::memcpy(z.Expose().data() + (32 - x.size), x.buffer, x.size);
  Wipe(out, sizeof *out);
  return z;
}

}  // namespace

Result<Bytes> CreateTpmEcdhKey(const TpmConfig& config) {
  SK_ASSIGN_OR_RETURN(std::unique_ptr<EsysContext> esys, EsysContext::Open(config.tcti));
  return CreateTpmEcdhKeyIn(esys->get(), config.primary_handle);
}

Result<Bytes> CreateTpmEcdhKeyIn(ESYS_CONTEXT* ctx, std::uint32_t primary_handle) {
  SK_ASSIGN_OR_RETURN(ScopedTr primary, LoadPrimary(ctx, primary_handle));
  TPM2B_SENSITIVE_CREATE sensitive{};
  TPM2B_PUBLIC in_public = EcdhTemplate();
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION creation_pcr{};
  TPM2B_PRIVATE* out_private = nullptr;
  TPM2B_PUBLIC* out_public = nullptr;
  TSS2_RC rc =
      Esys_Create(ctx, primary.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &in_public,
                  &outside, &creation_pcr, &out_private, &out_public, nullptr, nullptr, nullptr);
  if (rc != TSS2_RC_SUCCESS) return TpmError("TPM2_Create of the ECDH key", rc);
  EsysPtr<TPM2B_PRIVATE> priv_guard(out_private);
  EsysPtr<TPM2B_PUBLIC> pub_guard(out_public);
  std::array<std::uint8_t, kMaxTpmArea> pub{};
  std::array<std::uint8_t, kMaxTpmArea> priv{};
  std::size_t pub_n = 0;
  std::size_t priv_n = 0;
  if (Tss2_MU_TPM2B_PUBLIC_Marshal(out_public, pub.data(), pub.size(), &pub_n) != TSS2_RC_SUCCESS ||
      Tss2_MU_TPM2B_PRIVATE_Marshal(out_private, priv.data(), priv.size(), &priv_n) != TSS2_RC_SUCCESS) {
    return Internal("cannot marshal the ECDH key");
  }
  ByteWriter w;
  w.Var16(ByteView(pub.data(), pub_n));
  w.Var16(ByteView(priv.data(), priv_n));
  Bytes out(kMagic.begin(), kMagic.end());  // (ByteWriter::Raw here trips a GCC 12 false positive)
  out.insert(out.end(), w.bytes().begin(), w.bytes().end());
  return out;
}

Result<std::unique_ptr<EcdhPrivateKey>> OpenTpmEcdhKey(const TpmConfig& config, ByteView blob) {
  SK_RETURN_IF_ERROR(ParseBlob(blob).status());
  SK_ASSIGN_OR_RETURN(std::unique_ptr<EsysContext> esys, EsysContext::Open(config.tcti));
  std::shared_ptr<EsysContext> owned = std::move(esys);
  return OpenTpmEcdhKeyLent(blob, config.primary_handle,
                            [owned](const EsysUser& use) { return use(owned->get()); });
}

Result<std::unique_ptr<EcdhPrivateKey>> OpenTpmEcdhKeyLent(ByteView blob, std::uint32_t primary_handle,
                                                           LendEsys lend) {
  SK_ASSIGN_OR_RETURN(KeyAreas areas, ParseBlob(blob));
  SK_ASSIGN_OR_RETURN(Bytes public_key, Uncompressed(areas.pub.publicArea.unique.ecc));
  return std::unique_ptr<EcdhPrivateKey>(
      new TpmEcdhKey(std::move(lend), primary_handle, areas, std::move(public_key)));
}

}  // namespace sk::hsm::tpm
