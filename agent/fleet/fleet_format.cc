#include "agent/fleet/fleet_format.h"

#include <algorithm>
#include <cstring>

#include "crypto/aead.h"
#include "crypto/ecdsa.h"

#include "agent/secrets/path.h"

namespace sk::fleet {
namespace {

constexpr std::string_view kMagic = "SKFE";
constexpr std::string_view kSignDomain = "sealkeep fleet entry v1";
constexpr std::string_view kHashDomain = "sealkeep fleet entry hash v1";
constexpr std::string_view kSignerIdDomain = "sealkeep fleet signer id v1";
constexpr std::string_view kValueDomain = "sealkeep fleet value v1";
constexpr std::string_view kWrapDomain = "sealkeep fleet wrap v1";
constexpr std::string_view kSnapshotDomain = "sealkeep fleet snapshot v1";
constexpr std::string_view kSnapshotMagic = "SKFS";

Status Malformed(const std::string& what) {
  return Corruption("fleet entry: " + what, "malformed_fleet_entry");
}

Bytes Domain(std::string_view domain) {
  Bytes out(domain.begin(), domain.end());
  out.push_back(0);
  return out;
}

void PutGroups(ByteWriter& w, const std::vector<std::string>& groups) {
  w.U16(static_cast<std::uint16_t>(groups.size()));
  for (const std::string& g : groups) w.Var16(g);
}

Status CheckGroups(const std::vector<std::string>& groups) {
  if (groups.size() > kMaxGroups) return InvalidArgument("at most 64 groups", "bad_name");
  for (std::size_t i = 0; i < groups.size(); ++i) {
    SK_RETURN_IF_ERROR(ValidateName("group", groups[i]));
    if (i > 0 && groups[i - 1] >= groups[i])
      return InvalidArgument("groups must be ascending and unique", "bad_name");
  }
  return OkStatus();
}

bool GetGroups(ByteReader& r, std::vector<std::string>& groups) {
  std::uint16_t n = 0;
  if (!r.U16(n) || n > kMaxGroups) return false;
  groups.resize(n);
  for (std::string& g : groups) {
    if (!r.Var16(g, kMaxNameBytes)) return false;
  }
  return CheckGroups(groups).ok();
}

void PutSigned(ByteWriter& w, const Entry& e) {
  w.Raw(kMagic);
  w.U8(kEntryFormatVersion);
  w.U64(e.seq);
  w.Raw(e.prev_hash);
  w.U64(e.time_ms);
  w.Raw(e.signer_id);
  w.U8(static_cast<std::uint8_t>(e.kind));
  w.Var32(e.body);
}

Bytes SignedMessage(const Entry& e) {
  ByteWriter w;
  w.Raw(Domain(kSignDomain));
  PutSigned(w, e);
  return std::move(w).Take();
}

Bytes PathAad(std::string_view domain, std::string_view host_id, std::string_view path,
              std::uint64_t version) {
  ByteWriter w;
  w.Raw(Domain(domain));
  if (!host_id.empty()) {
    w.Raw(host_id);
    w.U8(0);
  }
  w.Raw(path);
  w.U8(0);
  w.U64(version);
  return std::move(w).Take();
}

}  // namespace

SignerId SignerIdOf(ByteView signer_public_key) {
  Bytes msg = Domain(kSignerIdDomain);
  msg.insert(msg.end(), signer_public_key.begin(), signer_public_key.end());
  Digest d = Sha256(msg);
  SignerId id{};
  std::copy_n(d.begin(), id.size(), id.begin());
  return id;
}

std::string_view KeyKindName(KeyKind kind) {
  switch (kind) {
    case KeyKind::kTpm:
      return "tpm";
    case KeyKind::kPkcs11:
      return "pkcs11";
    case KeyKind::kSoftware:
      return "software";
  }
  return "unknown";
}

Status ValidateName(std::string_view what, std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) {
    return InvalidArgument(std::string(what) + " names are 1-64 bytes", "bad_name");
  }
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
      return InvalidArgument(std::string(what) + " names are made of a-z, 0-9, '.', '_' and '-'", "bad_name");
    }
  }
  return OkStatus();
}

Result<Bytes> EncodeHost(const HostRecord& host) {
  SK_RETURN_IF_ERROR(ValidateName("host", host.host_id));
  SK_RETURN_IF_ERROR(CheckGroups(host.groups));
  if (host.public_key.size() != kPublicKeySize)
    return InvalidArgument("a host key is 65 bytes", "bad_host_key");
  const auto state = static_cast<std::uint8_t>(host.state);
  const auto kind = static_cast<std::uint8_t>(host.key_kind);
  if (state < 1 || state > 2 || kind < 1 || kind > 3) {
    return InvalidArgument("a host record has an unknown state or key kind", "bad_host_record");
  }
  ByteWriter w;
  w.Var16(host.host_id);
  w.U8(static_cast<std::uint8_t>(host.state));
  w.U8(static_cast<std::uint8_t>(host.key_kind));
  w.Raw(host.public_key);
  PutGroups(w, host.groups);
  return std::move(w).Take();
}

Result<HostRecord> DecodeHost(ByteView body) {
  ByteReader r(body);
  HostRecord h;
  std::uint8_t state = 0;
  std::uint8_t kind = 0;
  ByteView key;
  if (!r.Var16(h.host_id, kMaxNameBytes) || !ValidateName("host", h.host_id).ok() || !r.U8(state) ||
      !r.U8(kind) || !r.Raw(kPublicKeySize, key) || !GetGroups(r, h.groups) || !r.AtEnd()) {
    return Malformed("a host record does not parse");
  }
  if (state < 1 || state > 2 || kind < 1 || kind > 3)
    return Malformed("a host record has an unknown state or key kind");
  h.state = static_cast<HostState>(state);
  h.key_kind = static_cast<KeyKind>(kind);
  h.public_key.assign(key.begin(), key.end());
  return h;
}

Result<Bytes> EncodeTxn(const std::vector<TxnOp>& ops) {
  if (ops.empty() || ops.size() > kMaxOps)
    return InvalidArgument("a fleet transaction has 1-999 ops", "bad_txn");
  ByteWriter w;
  w.U16(static_cast<std::uint16_t>(ops.size()));
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const TxnOp& op = ops[i];
    SK_RETURN_IF_ERROR(secrets::ValidatePath(op.path));
    if (i > 0 && ops[i - 1].path >= op.path)
      return InvalidArgument("paths must be ascending and unique", "bad_txn");
    SK_RETURN_IF_ERROR(CheckGroups(op.groups));
    if (op.groups.empty()) return InvalidArgument("every op names at least one group", "bad_txn");
    if (op.value.size() > kMaxValueBytes + kAeadBlobOverhead)
      return Status(Code::kTooLarge, "too_large", "a value is at most 1 MiB");
    w.Var16(op.path);
    w.U8(static_cast<std::uint8_t>(op.kind));
    w.U64(op.version);
    PutGroups(w, op.groups);
    w.Raw(op.dek_commit);
    w.Var32(op.value);
  }
  if (w.bytes().size() > kMaxBodyBytes)
    return Status(Code::kTooLarge, "too_large", "a fleet transaction is at most 4 MiB");
  return std::move(w).Take();
}

Result<std::vector<TxnOp>> DecodeTxn(ByteView body) {
  ByteReader r(body);
  std::uint16_t n = 0;
  if (!r.U16(n) || n == 0 || n > kMaxOps) return Malformed("a transaction has 1-999 ops");
  std::vector<TxnOp> ops(n);
  for (std::size_t i = 0; i < ops.size(); ++i) {
    TxnOp& op = ops[i];
    std::uint8_t kind = 0;
    ByteView value;
    if (!r.Var16(op.path, secrets::kMaxPath) || !r.U8(kind) || !r.U64(op.version) ||
        !GetGroups(r, op.groups) || !r.Fixed(op.dek_commit) ||
        !r.Var32(value, kMaxValueBytes + kAeadBlobOverhead)) {
      return Malformed("op " + std::to_string(i) + " does not parse");
    }
    if (!secrets::ValidatePath(op.path).ok() || (i > 0 && ops[i - 1].path >= op.path) || op.groups.empty() ||
        op.version == 0 || (kind != 1 && kind != 2) || (kind == 2 && !value.empty())) {
      return Malformed("op " + std::to_string(i) + " is not a valid op");
    }
    op.kind = static_cast<OpKind>(kind);
    op.value.assign(value.begin(), value.end());
  }
  if (!r.AtEnd()) return Malformed("trailing bytes after the ops");
  return ops;
}

Result<Bytes> SignEntry(Entry& entry, const SecretBytes& signing_key) {
  if (entry.body.size() > kMaxBodyBytes)
    return Status(Code::kTooLarge, "too_large", "a fleet entry is too large");
  SK_ASSIGN_OR_RETURN(entry.signature, EcdsaP256Sign(signing_key, SignedMessage(entry)));
  ByteWriter w;
  PutSigned(w, entry);
  w.Raw(entry.signature);
  return std::move(w).Take();
}

Result<Entry> DecodeEntry(ByteView encoded) {
  ByteReader r(encoded);
  ByteView magic;
  std::uint8_t version = 0;
  std::uint8_t kind = 0;
  ByteView body;
  ByteView sig;
  Entry e;
  if (!r.Raw(kMagic.size(), magic) || std::memcmp(magic.data(), kMagic.data(), kMagic.size()) != 0) {
    return Malformed("not a fleet entry");
  }
  if (!r.U8(version) || version != kEntryFormatVersion) return Malformed("unknown format version");
  if (!r.U64(e.seq) || !r.Fixed(e.prev_hash) || !r.U64(e.time_ms) || !r.Fixed(e.signer_id) || !r.U8(kind) ||
      !r.Var32(body, kMaxBodyBytes) || !r.Raw(64, sig) || !r.AtEnd()) {
    return Malformed("truncated, oversized or with trailing bytes");
  }
  if (e.seq == 0 || (kind != 1 && kind != 2)) return Malformed("seq 0 or an unknown kind");
  e.kind = static_cast<EntryKind>(kind);
  e.body.assign(body.begin(), body.end());
  e.signature.assign(sig.begin(), sig.end());
  return e;
}

Status VerifyEntry(const Entry& entry, ByteView signer_public_key) {
  if (entry.signer_id != SignerIdOf(signer_public_key)) {
    return Corruption("entry " + std::to_string(entry.seq) + " is signed by another fleet key",
                      "bad_signature");
  }
  Status st = EcdsaP256Verify(signer_public_key, SignedMessage(entry), entry.signature);
  if (!st.ok())
    return Corruption("entry " + std::to_string(entry.seq) + ": its signature does not verify",
                      "bad_signature");
  return OkStatus();
}

Digest EntryHash(ByteView encoded) {
  // Without the signature: ECDSA signatures are malleable ((r, s) and (r, n - s) both
  // verify), and a twin signature must not make a twin entry.
  const std::size_t signed_size =
      encoded.size() >= kEcdsaSignatureSize ? encoded.size() - kEcdsaSignatureSize : 0;
  Sha256Hasher h;
  h.Update(Domain(kHashDomain)).Update(encoded.first(signed_size));
  return h.Finish();
}

Bytes ValueAad(std::string_view path, std::uint64_t version) {
  return PathAad(kValueDomain, "", path, version);
}

Bytes WrapAad(std::string_view host_id, std::string_view path, std::uint64_t version) {
  return PathAad(kWrapDomain, host_id, path, version);
}

namespace {

Status MalformedSnapshot(const std::string& what) {
  return Corruption("fleet snapshot: " + what, "malformed_fleet_snapshot");
}

Bytes SnapshotMessage(ByteView body) {
  Bytes m = Domain(kSnapshotDomain);
  m.insert(m.end(), body.begin(), body.end());
  return m;
}

}  // namespace

Result<Bytes> EncodeSnapshot(const FleetSnapshot& snap) {
  if (snap.paths.size() > kMaxSnapshotPaths)
    return Status(Code::kTooLarge, "too_large", "a fleet snapshot holds at most 100,000 paths");
  ByteWriter w;
  w.Raw(kSnapshotMagic);
  w.U8(1);
  w.Var16(snap.name);
  w.Var16(snap.prefix);
  w.U64(snap.head_seq);
  w.U64(snap.time_ms);
  w.U32(static_cast<std::uint32_t>(snap.paths.size()));
  for (const SnapshotPath& p : snap.paths) {
    w.Var16(p.path);
    w.U64(p.version);
    w.U64(p.seq);
  }
  return std::move(w).Take();
}

Result<FleetSnapshot> DecodeSnapshot(ByteView body) {
  ByteReader r(body);
  ByteView magic;
  std::uint8_t version = 0;
  std::uint32_t count = 0;
  FleetSnapshot snap;
  if (!r.Raw(kSnapshotMagic.size(), magic) ||
      std::memcmp(magic.data(), kSnapshotMagic.data(), kSnapshotMagic.size()) != 0 || !r.U8(version) ||
      version != 1) {
    return MalformedSnapshot("not a version 1 fleet snapshot");
  }
  if (!r.Var16(snap.name, 128) || !r.Var16(snap.prefix, 256) || !r.U64(snap.head_seq) ||
      !r.U64(snap.time_ms) || !r.U32(count) || count > kMaxSnapshotPaths) {
    return MalformedSnapshot("truncated or oversized header");
  }
  snap.paths.reserve(std::min<std::size_t>(count, r.remaining() / 18));
  for (std::uint32_t i = 0; i < count; ++i) {
    SnapshotPath p;
    if (!r.Var16(p.path, 256) || !r.U64(p.version) || !r.U64(p.seq))
      return MalformedSnapshot("truncated path list");
    if (!secrets::ValidatePath(p.path).ok() || p.version == 0 || p.seq == 0 || p.seq > snap.head_seq ||
        (!snap.paths.empty() && snap.paths.back().path >= p.path)) {
      return MalformedSnapshot("path " + std::to_string(i) + " is not a valid entry");
    }
    snap.paths.push_back(std::move(p));
  }
  if (!r.AtEnd()) return MalformedSnapshot("trailing bytes");
  return snap;
}

Result<Bytes> SignSnapshot(ByteView body, const SecretBytes& signing_key) {
  return EcdsaP256Sign(signing_key, SnapshotMessage(body));
}

Status VerifySnapshot(ByteView body, ByteView signature, ByteView signer_public_key) {
  if (!EcdsaP256Verify(signer_public_key, SnapshotMessage(body), signature).ok())
    return Corruption("the fleet snapshot's signature does not verify under the fleet key", "bad_signature");
  return OkStatus();
}

}  // namespace sk::fleet
