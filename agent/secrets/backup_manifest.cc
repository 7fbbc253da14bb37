#include "agent/secrets/backup_manifest.h"

#include <charconv>
#include <map>

#include "agent/store/sqlite.h"
#include "crypto/ct.h"
#include "crypto/mac.h"

namespace sk::secrets {
namespace {

constexpr std::string_view kSealDomain = "sealkeep backup manifest v1";
constexpr std::string_view kHeader = "sealkeep backup v1\n";

Status Unreadable(const std::string& file, std::string_view why) {
  return Status(
      Code::kCorruption, "backup_unreadable",
      file + " is not a readable sealkeep backup (" + std::string(why) + "): truncated or not a backup");
}
Status Invalid(const std::string& why) {
  return Status(Code::kCorruption, "backup_manifest_invalid", "the backup's manifest " + why);
}

Digest Seal(const SecretBytes& jk, const std::string& text) {
  Bytes msg(kSealDomain.begin(), kSealDomain.end());
  msg.push_back(0);
  msg.insert(msg.end(), text.begin(), text.end());
  return HmacSha256(jk, msg);
}

Result<std::pair<std::string, Bytes>> ReadRaw(const std::string& file) {
  auto db = store::Db::Open(file, false);
  if (!db.ok()) return Unreadable(file, db.status().message());
  auto read = [&](const char* key) -> Result<std::optional<Bytes>> {
    auto s = (*db)->Prepare("SELECT value FROM meta WHERE key = ?1");
    if (!s.ok()) return Unreadable(file, s.status().message());
    s->Bind(1, std::string_view(key));
    if (!s->Step()) {
      if (!s->status().ok()) return Unreadable(file, s->status().message());
      return std::optional<Bytes>();
    }
    ByteView v = s->Blob(0);
    return std::optional<Bytes>(Bytes(v.begin(), v.end()));
  };
  SK_ASSIGN_OR_RETURN(auto text, read("backup_manifest"));
  SK_ASSIGN_OR_RETURN(auto seal, read("backup_manifest_seal"));
  if (!text || !seal) return Unreadable(file, "it has no backup manifest");
  return std::pair<std::string, Bytes>(std::string(AsChars(*text)), *seal);
}

Result<BackupManifest> ParseText(std::string_view text) {
  if (text.rfind(kHeader, 0) != 0) return Invalid("does not start with \"sealkeep backup v1\"");
  std::map<std::string, std::string> f;
  std::size_t pos = kHeader.size();
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) return Invalid("ends in an unfinished line");
    std::string line(text.substr(pos, nl - pos));
    std::size_t eq = line.find('=');
    if (eq == std::string::npos) return Invalid("has a line without '='");
    f[line.substr(0, eq)] = line.substr(eq + 1);
    pos = nl + 1;
  }
  auto num = [&](const char* name, std::uint64_t& out) -> Status {
    auto it = f.find(name);
    if (it == f.end()) return Invalid(std::string("lacks ") + name);
    auto [p, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), out);
    if (ec != std::errc() || p != it->second.data() + it->second.size())
      return Invalid(std::string("has a bad ") + name);
    return OkStatus();
  };
  BackupManifest m;
  SK_RETURN_IF_ERROR(num("head_seq", m.head_seq));
  SK_RETURN_IF_ERROR(num("versions", m.versions));
  SK_RETURN_IF_ERROR(num("recovery_wrapped", m.recovery_wrapped));
  SK_RETURN_IF_ERROR(num("created_ms", m.created_ms));
  m.store_id = f["store_id"];
  m.recovery_key_id = f["recovery_key_id"];
  auto hash = HexDecode(f["head_hash"]);
  if (!hash || hash->size() != m.head_hash.size() || m.store_id.size() != 32) {
    return Invalid("has a bad store_id or head_hash");
  }
  std::copy(hash->begin(), hash->end(), m.head_hash.begin());
  return m;
}

}  // namespace

Result<BackupManifest> ParseBackupManifest(std::string_view text) { return ParseText(text); }

std::string EncodeBackupManifest(const BackupManifest& m) {
  return std::string(kHeader) + "store_id=" + m.store_id + "\nhead_seq=" + std::to_string(m.head_seq) +
         "\nhead_hash=" + HexEncode(m.head_hash) + "\nversions=" + std::to_string(m.versions) +
         "\nrecovery_key_id=" + m.recovery_key_id +
         "\nrecovery_wrapped=" + std::to_string(m.recovery_wrapped) +
         "\ncreated_ms=" + std::to_string(m.created_ms) + "\n";
}

Status WriteBackupManifest(const std::string& file, const BackupManifest& m, const SecretBytes& jk) {
  const std::string text = EncodeBackupManifest(m);
  const Digest seal = Seal(jk, text);
  SK_ASSIGN_OR_RETURN(auto db, store::Db::Open(file, false));
  SK_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous = FULL"));
  SK_RETURN_IF_ERROR(db->Exec("BEGIN IMMEDIATE"));
  SK_ASSIGN_OR_RETURN(store::Stmt s, db->Prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)"));
  SK_RETURN_IF_ERROR(s.Bind(1, std::string_view("backup_manifest")).BindBlob(2, AsBytes(text)).Run());
  SK_ASSIGN_OR_RETURN(store::Stmt s2,
                      db->Prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)"));
  SK_RETURN_IF_ERROR(s2.Bind(1, std::string_view("backup_manifest_seal")).BindBlob(2, seal).Run());
  return db->Exec("COMMIT");
}

Result<BackupManifest> ReadBackupManifest(const std::string& file) {
  SK_ASSIGN_OR_RETURN(auto raw, ReadRaw(file));
  return ParseText(raw.first);
}

Result<BackupManifest> ReadSealedBackupManifest(const std::string& file, const SecretBytes& jk) {
  SK_ASSIGN_OR_RETURN(auto raw, ReadRaw(file));
  const Digest want = Seal(jk, raw.first);
  if (raw.second.size() != want.size() || !ConstantTimeEqual(raw.second, want)) {
    return Invalid("does not verify under the store's journal key: the backup was edited");
  }
  return ParseText(raw.first);
}

}  // namespace sk::secrets
