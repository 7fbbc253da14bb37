#include "crypto/ecdsa.h"

#include <mbedtls/ecdsa.h>

#include "crypto/mac.h"
#include "crypto/p256_internal.h"

namespace sk {
namespace {

constexpr std::size_t kScalarSize = 32;
constexpr std::size_t kPublicSize = 65;

Status BadKey(const std::string& what) { return InvalidArgument(what, "bad_signing_key"); }
Status BadSignature(const std::string& what) { return Corruption(what, "bad_signature"); }

}  // namespace

Result<Bytes> EcdsaP256Sign(const SecretBytes& private_key, ByteView message) {
  p256::Group grp;
  p256::Mpi d;
  if (private_key.size() != kScalarSize ||
      mbedtls_mpi_read_binary(&d.m, private_key.Expose().data(), private_key.size()) != 0 ||
      mbedtls_ecp_check_privkey(&grp.g, &d.m) != 0) {
    return BadKey("a signing key is a 32-byte P-256 scalar");
  }
  const Digest hash = Sha256(message);
  p256::Mpi r;
  p256::Mpi s;
  if (mbedtls_ecdsa_sign_det_ext(&grp.g, &r.m, &s.m, &d.m, hash.data(), hash.size(), MBEDTLS_MD_SHA256,
                                 p256::Rng, nullptr) != 0) {
    return Internal("ECDSA signing failed");
  }
  Bytes sig(kEcdsaSignatureSize);
  if (mbedtls_mpi_write_binary(&r.m, sig.data(), kScalarSize) != 0 ||
      mbedtls_mpi_write_binary(&s.m, sig.data() + kScalarSize, kScalarSize) != 0) {
    return Internal("cannot encode the signature");
  }
  return sig;
}

Status EcdsaP256Verify(ByteView public_key, ByteView message, ByteView signature) {
  p256::Group grp;
  p256::Point q;
  if (public_key.size() != kPublicSize || public_key[0] != 0x04 ||
      mbedtls_ecp_point_read_binary(&grp.g, &q.p, public_key.data(), public_key.size()) != 0 ||
      mbedtls_ecp_check_pubkey(&grp.g, &q.p) != 0) {
    return BadKey("a verifying key is a 65-byte uncompressed P-256 point");
  }
  if (signature.size() != kEcdsaSignatureSize) return BadSignature("a signature is 64 bytes");
  p256::Mpi r;
  p256::Mpi s;
  if (mbedtls_mpi_read_binary(&r.m, signature.data(), kScalarSize) != 0 ||
      mbedtls_mpi_read_binary(&s.m, signature.data() + kScalarSize, kScalarSize) != 0) {
    return BadSignature("the signature does not parse");
  }
  const Digest hash = Sha256(message);
  if (mbedtls_ecdsa_verify(&grp.g, hash.data(), hash.size(), &q.p, &r.m, &s.m) != 0) {
    return BadSignature("the signature does not verify");
  }
  return OkStatus();
}

}  // namespace sk
