#include "crypto/recovery_wrap.h"

#include <mbedtls/ecdh.h>
#include <mbedtls/ecp.h>

#include <cstring>
#include <string_view>

#include "crypto/aead.h"
#include "crypto/mac.h"
#include "crypto/p256_internal.h"
#include "crypto/random.h"

namespace sk {
namespace {

constexpr std::string_view kMagic = "SKRW";
constexpr std::uint8_t kVersion = 0x01;
constexpr std::size_t kHeaderSize = 4 + 1 + kRecoveryKeyIdSize + kRecoveryPublicKeySize;
constexpr std::string_view kInfo = "sealkeep recovery wrap v1";
constexpr std::string_view kKeyIdDomain = "sealkeep recovery key id v1";

Status BadKey(const std::string& what) { return InvalidArgument(what, "bad_recovery_key"); }
Status Malformed(const std::string& what) {
  return Status(Code::kCorruption, "malformed_recovery_blob", what);
}

using p256::Group;
using p256::Mpi;
using p256::Point;
using p256::Rng;

Result<Bytes> WritePoint(Group& grp, Point& q) {
  Bytes out(kRecoveryPublicKeySize);
  std::size_t len = 0;
  if (mbedtls_ecp_point_write_binary(&grp.g, &q.p, MBEDTLS_ECP_PF_UNCOMPRESSED, &len, out.data(),
                                     out.size()) != 0 ||
      len != out.size()) {
    return BadKey("cannot encode the public key");
  }
  return out;
}

Status ReadPoint(Group& grp, ByteView in, Point& q) {
  if (in.size() != kRecoveryPublicKeySize || in[0] != 0x04)
    return BadKey("a recovery public key is 65 bytes, 0x04 first");
  if (mbedtls_ecp_point_read_binary(&grp.g, &q.p, in.data(), in.size()) != 0 ||
      mbedtls_ecp_check_pubkey(&grp.g, &q.p) != 0) {
    return BadKey("not a point of P-256");
  }
  return OkStatus();
}

Status ReadScalar(Group& grp, const SecretBytes& in, Mpi& d) {
  if (in.size() != kRecoveryPrivateKeySize) return BadKey("a recovery private key is 32 bytes");
  if (mbedtls_mpi_read_binary(&d.m, in.Expose().data(), in.size()) != 0 ||
      mbedtls_ecp_check_privkey(&grp.g, &d.m) != 0) {
    return BadKey("not a P-256 private key");
  }
  return OkStatus();
}

Result<SecretBytes> Ecdh(Group& grp, Mpi& d, Point& peer) {
  Mpi z;
  if (mbedtls_ecdh_compute_shared(&grp.g, &z.m, &peer.p, &d.m, Rng, nullptr) != 0) {
    return BadKey("the ECDH computation failed");
  }
  SecretBytes out(32);
  if (mbedtls_mpi_write_binary(&z.m, out.Expose().data(), out.size()) != 0)
    return BadKey("the shared secret is too long");
  return out;
}

Bytes Concat(ByteView a, ByteView b) {
  Bytes out(a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

Bytes Info(ByteView aad) {
  Bytes info(kInfo.begin(), kInfo.end());
  info.push_back(0);
  info.insert(info.end(), aad.begin(), aad.end());
  return info;
}

}  // namespace

Result<RecoveryKeyPair> GenerateRecoveryKey() {
  Group grp;
  Mpi d;
  Point q;
  if (mbedtls_ecp_gen_keypair(&grp.g, &d.m, &q.p, Rng, nullptr) != 0)
    return BadKey("cannot make a P-256 key pair");
  RecoveryKeyPair kp;
  SK_ASSIGN_OR_RETURN(kp.public_key, WritePoint(grp, q));
  kp.private_key = SecretBytes(kRecoveryPrivateKeySize);
  if (mbedtls_mpi_write_binary(&d.m, kp.private_key.Expose().data(), kp.private_key.size()) != 0) {
    return BadKey("cannot encode the private key");
  }
  return kp;
}

Result<Bytes> RecoveryPublicKey(const SecretBytes& private_key) {
  Group grp;
  Mpi d;
  SK_RETURN_IF_ERROR(ReadScalar(grp, private_key, d));
  Point q;
  if (mbedtls_ecp_mul(&grp.g, &q.p, &d.m, &grp.g.G, Rng, nullptr) != 0)
    return BadKey("cannot derive the public key");
  return WritePoint(grp, q);
}

Bytes RecoveryKeyId(ByteView public_key) {
  Bytes msg(kKeyIdDomain.begin(), kKeyIdDomain.end());
  msg.push_back(0);
  msg.insert(msg.end(), public_key.begin(), public_key.end());
  Digest d = Sha256(msg);
  return Bytes(d.begin(), d.begin() + kRecoveryKeyIdSize);
}

Result<Bytes> RecoveryBlobKeyId(ByteView blob) {
  if (blob.size() < kRecoveryBlobOverhead || std::memcmp(blob.data(), kMagic.data(), kMagic.size()) != 0) {
    return Malformed("not a recovery-wrapped blob");
  }
  if (blob[4] != kVersion)
    return Malformed("recovery blob version " + std::to_string(blob[4]) + " is not known");
  return Bytes(blob.begin() + 5, blob.begin() + 5 + kRecoveryKeyIdSize);
}

Result<std::unique_ptr<RecoverySealer>> RecoverySealer::Create(ByteView recovery_public_key) {
  Group grp;
  Point recipient;
  SK_RETURN_IF_ERROR(ReadPoint(grp, recovery_public_key, recipient));
  Mpi e;
  Point eq;
  if (mbedtls_ecp_gen_keypair(&grp.g, &e.m, &eq.p, Rng, nullptr) != 0)
    return BadKey("cannot make an ephemeral key");
  SK_ASSIGN_OR_RETURN(Bytes ephemeral, WritePoint(grp, eq));
  std::unique_ptr<RecoverySealer> s(new RecoverySealer());
  SK_ASSIGN_OR_RETURN(s->z_, Ecdh(grp, e, recipient));
  s->key_id_ = RecoveryKeyId(recovery_public_key);
  s->header_.assign(kMagic.begin(), kMagic.end());
  s->header_.push_back(kVersion);
  s->header_.insert(s->header_.end(), s->key_id_.begin(), s->key_id_.end());
  s->header_.insert(s->header_.end(), ephemeral.begin(), ephemeral.end());
  s->salt_ = Concat(ephemeral, recovery_public_key);
  return s;
}

Result<Bytes> RecoverySealer::Seal(const SecretBytes& plaintext, ByteView aad) const {
  SK_ASSIGN_OR_RETURN(SecretBytes key, HkdfSha256(z_, salt_, Info(aad), kAeadKeySize));
  SK_ASSIGN_OR_RETURN(Bytes nonce, RandomBytes(kAeadNonceSize));
  Bytes out = header_;
  out.insert(out.end(), nonce.begin(), nonce.end());
  const std::size_t body = out.size();
  out.resize(body + plaintext.size() + kAeadTagSize);
  SK_RETURN_IF_ERROR(AesGcmSeal(key, nonce, Concat(header_, aad), plaintext.Expose(),
                                std::span<std::uint8_t>(out.data() + body, out.size() - body)));
  return out;
}

namespace {

class SoftwareKey final : public EcdhPrivateKey {
 public:
  SoftwareKey(SecretBytes scalar, Bytes public_key)
      : scalar_(std::move(scalar)), public_key_(std::move(public_key)) {}
  const Bytes& public_key() const override { return public_key_; }
  Result<SecretBytes> SharedSecret(ByteView peer_public) override {
    Group grp;
    Point peer;
    SK_RETURN_IF_ERROR(ReadPoint(grp, peer_public, peer));
    Mpi d;
    SK_RETURN_IF_ERROR(ReadScalar(grp, scalar_, d));
    return Ecdh(grp, d, peer);
  }

 private:
  SecretBytes scalar_;
  Bytes public_key_;
};

}  // namespace

Result<std::unique_ptr<EcdhPrivateKey>> SoftwareEcdhKey(SecretBytes private_key) {
  SK_ASSIGN_OR_RETURN(Bytes public_key, RecoveryPublicKey(private_key));
  return std::unique_ptr<EcdhPrivateKey>(new SoftwareKey(std::move(private_key), std::move(public_key)));
}

Result<std::unique_ptr<RecoveryOpener>> RecoveryOpener::Create(SecretBytes private_key) {
  SK_ASSIGN_OR_RETURN(std::unique_ptr<EcdhPrivateKey> key, SoftwareEcdhKey(std::move(private_key)));
  return Create(std::move(key));
}

std::unique_ptr<RecoveryOpener> RecoveryOpener::Create(std::unique_ptr<EcdhPrivateKey> key) {
  std::unique_ptr<RecoveryOpener> o(new RecoveryOpener());
  o->public_key_ = key->public_key();
  o->key_id_ = RecoveryKeyId(o->public_key_);
  o->key_ = std::move(key);
  return o;
}

Result<SecretBytes> RecoveryOpener::Open(ByteView blob, ByteView aad) {
  SK_ASSIGN_OR_RETURN(Bytes id, RecoveryBlobKeyId(blob));
  if (id != key_id_) {
    return Status(Code::kFailedPrecondition, "wrong_recovery_key",
                  "the blob is wrapped to recovery key " + HexEncode(id) + ", not to " + HexEncode(key_id_));
  }
  const ByteView header = blob.first(kHeaderSize);
  const Bytes ephemeral(blob.begin() + 5 + kRecoveryKeyIdSize, blob.begin() + kHeaderSize);
  SecretBytes key;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = z_by_ephemeral_.find(ephemeral);
    if (it == z_by_ephemeral_.end()) {
      Group grp;
      Point peer;
      if (Status st = ReadPoint(grp, ephemeral, peer); !st.ok())
        return Malformed("the blob's ephemeral key: " + std::string(st.message()));
      SK_ASSIGN_OR_RETURN(SecretBytes z, key_->SharedSecret(ephemeral));
      if (z.size() != 32)
        return BadKey("the ECDH key gave a shared secret of " + std::to_string(z.size()) + " bytes");
      if (z_by_ephemeral_.size() >= 64) z_by_ephemeral_.clear();
      it = z_by_ephemeral_.emplace(ephemeral, std::move(z)).first;
    }
    SK_ASSIGN_OR_RETURN(key, HkdfSha256(it->second, Concat(ephemeral, public_key_), Info(aad), kAeadKeySize));
  }
  const ByteView nonce = blob.subspan(kHeaderSize, kAeadNonceSize);
  const ByteView sealed = blob.subspan(kHeaderSize + kAeadNonceSize);
  SecretBytes out(sealed.size() - kAeadTagSize);
  SK_RETURN_IF_ERROR(AesGcmOpen(key, nonce, Concat(header, aad), sealed, out.Expose()));
  return out;
}

}  // namespace sk
