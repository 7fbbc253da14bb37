// A backup file (docs/recovery.md) is a copy of the store's SQLite file (SQLite's online
// backup) whose meta table also holds
//   backup_manifest       the text below
//   backup_manifest_seal  HMAC-SHA256(JK, "sealkeep backup manifest v1" 0x00 || text)
// text = "sealkeep backup v1\n" then one "name=value\n" per field: store_id, head_seq,
// head_hash (hex), versions, recovery_key_id (hex, or empty), recovery_wrapped, created_ms.
// The manifest is the backup's anchor: its head is what the copy's journal must end at,
// and only the journal key can seal one, so a copy cut short or edited does not pass.
//
// Errors: backup_unreadable (kCorruption: not an SQLite file, truncated, or no manifest),
// backup_manifest_invalid (kCorruption: malformed, or its seal does not verify).
#pragma once

#include <string>

#include "agent/secrets/service.h"
#include "crypto/secret_bytes.h"
#include "crypto/status.h"

namespace sk::secrets {

Status WriteBackupManifest(const std::string& file, const BackupManifest& m, const SecretBytes& jk);
// The manifest as written, seal not checked (what to show before a key is at hand).
Result<BackupManifest> ReadBackupManifest(const std::string& file);
// The manifest, its seal checked with the journal key.
Result<BackupManifest> ReadSealedBackupManifest(const std::string& file, const SecretBytes& jk);

std::string EncodeBackupManifest(const BackupManifest& m);
// The manifest text's fields (backup_manifest_invalid when malformed); fuzzed.
Result<BackupManifest> ParseBackupManifest(std::string_view text);

}  // namespace sk::secrets
