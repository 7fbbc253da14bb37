#include "hsm/pkcs11/ecdh_key.h"

#include <algorithm>
#include <vector>

#include "crypto/random.h"
#include "hsm/pkcs11/errors.h"
#include "hsm/pkcs11/objects.h"
#include "hsm/pkcs11/open_token.h"

namespace sk::hsm::pkcs11 {
namespace {

// DER of the OID prime256v1 (1.2.840.10045.3.1.7): CKA_EC_PARAMS of a P-256 key.
constexpr unsigned char kP256Params[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};

class TokenEcdhKey final : public EcdhPrivateKey {
 public:
  TokenEcdhKey(OpenToken token, ck_object_handle_t key, Bytes public_key)
      : token_(std::move(token)), key_(key), public_key_(std::move(public_key)) {}
  const Bytes& public_key() const override { return public_key_; }
  Result<SecretBytes> SharedSecret(ByteView peer_public) override;

 private:
  OpenToken token_;
  ck_object_handle_t key_;
  Bytes public_key_;
};

Result<SecretBytes> TokenEcdhKey::SharedSecret(ByteView peer_public) {
  const Session& s = token_.session;
  std::vector<unsigned char> peer(peer_public.begin(), peer_public.end());
  ck_ecdh1_derive_params params{CKD_NULL, 0, nullptr, peer.size(), peer.data()};
  ck_mechanism mech{CKM_ECDH1_DERIVE, &params, sizeof params};
  ck_object_class_t cls = CKO_SECRET_KEY;
  ck_key_type_t type = CKK_GENERIC_SECRET;
  unsigned long len = 32;
  // A session object (never on the token) that may be read: it is the ECDH output, which
  // only this process needs, for one HKDF.
  ck_attribute tmpl[] = {Attr(CKA_CLASS, &cls, sizeof cls),     Attr(CKA_KEY_TYPE, &type, sizeof type),
                         Attr(CKA_VALUE_LEN, &len, sizeof len), BoolAttr(CKA_TOKEN, false),
                         BoolAttr(CKA_SENSITIVE, false),        BoolAttr(CKA_EXTRACTABLE, true)};
  ck_object_handle_t derived = 0;
  ck_rv_t rv = s.fn().C_DeriveKey(s.handle(), &mech, key_, tmpl, std::size(tmpl), &derived);
  if (rv != CKR_OK) return RvError(rv, "C_DeriveKey (CKM_ECDH1_DERIVE)");
  SecretBytes z(32);
  ck_attribute value = Attr(CKA_VALUE, z.Expose().data(), z.size());
  rv = s.fn().C_GetAttributeValue(s.handle(), derived, &value, 1);
  (void)s.fn().C_DestroyObject(s.handle(), derived);
  if (rv != CKR_OK || value.value_len != 32) {
    return rv != CKR_OK ? RvError(rv, "C_GetAttributeValue of the ECDH output")
                        : Status(Code::kInternal, "pkcs11_error", "the ECDH output is not 32 bytes");
  }
  return z;
}

// The 65-byte point inside CKA_EC_POINT's DER OCTET STRING (04 41 04 x y); some tokens
// give the raw point.
Result<Bytes> PointOf(const Bytes& der) {
  if (der.size() == 67 && der[0] == 0x04 && der[1] == 0x41 && der[2] == 0x04)
    return Bytes(der.begin() + 2, der.end());
  if (der.size() == 65 && der[0] == 0x04) return der;
  return Status(Code::kInternal, "pkcs11_error", "the token's EC point is not an uncompressed P-256 point");
}

}  // namespace

Result<std::unique_ptr<EcdhPrivateKey>> OpenEcdhKey(const Pkcs11Config& config, const std::string& label,
                                                    bool create) {
  SK_ASSIGN_OR_RETURN(OpenToken token, OpenAndLogin(config));
  std::string l = label;
  ck_object_class_t priv_class = CKO_PRIVATE_KEY;
  ck_object_class_t pub_class = CKO_PUBLIC_KEY;
  auto find = [&](ck_object_class_t& cls) {
    ck_attribute t[] = {Attr(CKA_CLASS, &cls, sizeof cls), Attr(CKA_LABEL, l.data(), l.size())};
    return FindObjects(token.session, t);
  };
  SK_ASSIGN_OR_RETURN(std::vector<ck_object_handle_t> privs, find(priv_class));
  SK_ASSIGN_OR_RETURN(std::vector<ck_object_handle_t> pubs, find(pub_class));
  if (privs.size() > 1 || pubs.size() > 1) {
    return FailedPrecondition("the token holds two ECDH keys labelled " + label, "ecdh_key_ambiguous");
  }
  ck_object_handle_t priv = 0;
  ck_object_handle_t pub = 0;
  if (privs.size() != pubs.size()) {
    // Half a key pair: making a new pair beside it would leave two objects with one label.
    return FailedPrecondition(
        "the token holds only the " + std::string(privs.empty() ? "public" : "private") +
            " half of the ECDH key labelled " + label + "; remove it or restore the other half",
        "ecdh_key_incomplete");
  }
  if (privs.empty()) {
    if (!create) return NotFound("the token holds no ECDH key labelled " + label, "ecdh_key_not_found");
    SK_ASSIGN_OR_RETURN(Bytes id, RandomBytes(16));  // ties the two halves together
    ck_mechanism mech{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    std::vector<unsigned char> params(std::begin(kP256Params), std::end(kP256Params));
    ck_attribute pub_t[] = {Attr(CKA_EC_PARAMS, params.data(), params.size()),
                            Attr(CKA_LABEL, l.data(), l.size()), Attr(CKA_ID, id.data(), id.size()),
                            BoolAttr(CKA_TOKEN, true), BoolAttr(CKA_PRIVATE, false)};
    ck_attribute priv_t[] = {Attr(CKA_LABEL, l.data(), l.size()), Attr(CKA_ID, id.data(), id.size()),
                             BoolAttr(CKA_TOKEN, true),           BoolAttr(CKA_PRIVATE, true),
                             BoolAttr(CKA_SENSITIVE, true),       BoolAttr(CKA_EXTRACTABLE, false),
                             BoolAttr(CKA_DERIVE, true),          BoolAttr(CKA_SIGN, false),
                             BoolAttr(CKA_DECRYPT, false)};
    const Session& s = token.session;
    ck_rv_t rv = s.fn().C_GenerateKeyPair(s.handle(), &mech, pub_t, std::size(pub_t), priv_t,
                                          std::size(priv_t), &pub, &priv);
    if (rv != CKR_OK) return RvError(rv, "C_GenerateKeyPair (CKM_EC_KEY_PAIR_GEN, P-256)");
  } else {
    priv = privs[0];
    pub = pubs[0];
    SK_ASSIGN_OR_RETURN(Bytes priv_id, GetBytes(token.session, priv, CKA_ID));
    SK_ASSIGN_OR_RETURN(Bytes pub_id, GetBytes(token.session, pub, CKA_ID));
    if (priv_id.empty() || priv_id != pub_id) {
      return FailedPrecondition(
          "the public and private objects labelled " + label + " are not one key pair (CKA_ID)",
          "ecdh_key_mismatch");
    }
  }
  SK_ASSIGN_OR_RETURN(Bytes der, GetBytes(token.session, pub, CKA_EC_POINT));
  SK_ASSIGN_OR_RETURN(Bytes point, PointOf(der));
  return std::unique_ptr<EcdhPrivateKey>(new TokenEcdhKey(std::move(token), priv, std::move(point)));
}

}  // namespace sk::hsm::pkcs11
