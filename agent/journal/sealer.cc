#include "agent/journal/sealer.h"

#include "crypto/ct.h"

namespace sk::journal {

Digest Sealer::Domain(std::string_view domain, ByteView body) {
  static constexpr std::uint8_t kZero = 0;
  hmac_.Begin();
  hmac_.Update(AsBytes(domain));
  hmac_.Update(ByteView(&kZero, 1));
  hmac_.Update(body);
  return hmac_.End();
}

Digest Sealer::SealEntry(ByteView encoded) { return Domain(kEntrySealDomain, encoded); }

bool Sealer::EntrySealMatches(ByteView encoded, const Digest& seal) {
  return ConstantTimeEqual(SealEntry(encoded), seal);
}

Bytes Sealer::SealHead(const Head& head) {
  Bytes body = EncodeHeadBody(head);
  Digest seal = Domain(kHeadSealDomain, body);
  body.insert(body.end(), seal.begin(), seal.end());
  return body;
}

Result<Head> Sealer::OpenHead(ByteView record) {
  SK_ASSIGN_OR_RETURN(auto parsed, DecodeHeadRecord(record));
  Digest expect = Domain(kHeadSealDomain, record.first(kHeadBodySize));
  if (!ConstantTimeEqual(expect, parsed.second)) {
    return Status(Code::kCorruption, "head_invalid", "the sealed journal head does not verify");
  }
  return parsed.first;
}

Digest DekCommit(const SecretBytes& dek) { return HmacSha256(dek, AsBytes(kDekCommitDomain)); }

}  // namespace sk::journal
