#include "crypto/self_test.h"

#include "crypto/aead.h"
#include "crypto/ct.h"
#include "crypto/mac.h"

namespace sk {
namespace {

Bytes Hex(std::string_view h) { return *HexDecode(h); }

Status Fail(std::string_view what) {
  return Internal(std::string("crypto self-test failed: ") + std::string(what), "self_test_failed");
}

}  // namespace

Status RunCryptoSelfTest() {
  // NIST GCM spec, test case 16 (AES-256, 96-bit IV, AAD).
  SecretBytes key =
      SecretBytes::CopyFrom(Hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"));
  Bytes iv = Hex("cafebabefacedbaddecaf888");
  Bytes aad = Hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
  Bytes pt =
      Hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525"
          "b16aedf5aa0de657ba637b39");
  Bytes expect =
      Hex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838"
          "c5f61e6393ba7a0abcc9f662"
          "76fc6ece0f4e1768cddf8853bb2d551b");
  Bytes out(pt.size() + kAeadTagSize);
  if (!AesGcmSeal(key, iv, aad, pt, out).ok() || out != expect) return Fail("AES-256-GCM seal");
  Bytes back(pt.size());
  if (!AesGcmOpen(key, iv, aad, out, back).ok() || back != pt) return Fail("AES-256-GCM open");
  out[0] ^= 1;
  if (AesGcmOpen(key, iv, aad, out, back).ok()) return Fail("AES-256-GCM accepted a tampered ciphertext");

  // RFC 4231 test case 2.
  SecretBytes hkey = SecretBytes::CopyFrom(AsBytes("Jefe"));
  Digest mac = HmacSha256(hkey, AsBytes("what do ya want for nothing?"));
  if (!ConstantTimeEqual(mac, Hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"))) {
    return Fail("HMAC-SHA256");
  }

  // RFC 5869 test case 1.
  SecretBytes ikm = SecretBytes::CopyFrom(Hex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"));
  auto okm = HkdfSha256(ikm, Hex("000102030405060708090a0b0c"), Hex("f0f1f2f3f4f5f6f7f8f9"), 42);
  if (!okm.ok() ||
      !ConstantTimeEqual(okm->Expose(), Hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                                            "34007208d5b887185865"))) {
    return Fail("HKDF-SHA256");
  }

  Digest abc = Sha256(AsBytes("abc"));
  if (!ConstantTimeEqual(abc, Hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))) {
    return Fail("SHA-256");
  }
  return OkStatus();
}

}  // namespace sk
