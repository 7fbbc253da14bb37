// Making a file-backed token's writes durable (internal to hsm/pkcs11/).
//
// SoftHSM2's file object store writes and unlinks object files without fsync (checked
// with strace: a whole provisioning run makes no fsync call), so after a power cut the
// token may have lost what C_GenerateKey or C_CreateObject reported as done: a new
// master-key generation, or the newest anchor. SyncTree() fsyncs every regular file and
// every folder under `dir` (depth <= 2: SoftHSM2 keeps <tokendir>/<token uuid>/<files>),
// folders last, so created and removed names are durable too.
//
// Errors: sync_failed (kUnavailable) naming the path and errno text.
#pragma once

#include <functional>
#include <string>

#include "crypto/status.h"

namespace sk::hsm::pkcs11 {

Status SyncTree(const std::string& dir);

// A seam for power-loss sweeps (tests/agent/power_loss_test.cc): called with `dir` before
// each SyncTree; a non-OK result fails that SyncTree before it syncs anything. Empty
// function: no hook. Thread-safe.
using SyncHook = std::function<Status(const std::string& dir)>;
void SetSyncHookForTesting(SyncHook hook);

// SyncTree(dir) when dir is non-empty; OK otherwise.
inline Status SyncIfConfigured(const std::string& dir) { return dir.empty() ? OkStatus() : SyncTree(dir); }

}  // namespace sk::hsm::pkcs11
