#include "agent/store/fault_vfs.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <set>
#include <vector>

namespace sk::store {
namespace {

sqlite3_vfs* g_real = nullptr;
sqlite3_vfs g_vfs{};
FaultPlan g_plan;

// What a file held before a write or truncate since its last sync (power-loss sweeps).
struct Undo {
  sqlite3_int64 offset = 0;
  std::vector<unsigned char> old;  // the bytes the write replaced (within the old size)
  sqlite3_int64 new_end = 0;       // offset + length of the write (tear keeps its first half)
};
struct Tracked {
  bool have_base = false;
  sqlite3_int64 synced_size = 0;  // the size at the last sync (or when tracking began)
  std::vector<Undo> undo;
};

// Our file object; the real VFS's file object follows it in the same allocation.
struct FaultFile {
  sqlite3_file base;
  sqlite3_file* real;
  bool log_file;     // WAL or rollback journal: where a commit's bytes land
  Tracked* tracked;  // heap, owned; freed by Close
};

sqlite3_file* Real(sqlite3_file* f) { return reinterpret_cast<FaultFile*>(f)->real; }

std::mutex g_files_mu;         // guards g_files and every Tracked
std::set<FaultFile*> g_files;  // open files

// Whether this call is the armed one (counter reaches `at`); counts the call.
bool Hit(std::atomic<int>& counter, std::atomic<int>& at) {
  const int n = counter.fetch_add(1);
  const int target = at.load();
  if (target >= 0 && n == target) {
    at = -1;
    ++g_plan.fired;
    return true;
  }
  return false;
}

// Records what [off, off+n) held, before a write (locked).
void Remember(FaultFile* ff, sqlite3_int64 off, int n) {
  Tracked& t = *ff->tracked;
  sqlite3_int64 size = 0;
  if (ff->real->pMethods->xFileSize(ff->real, &size) != SQLITE_OK) return;
  if (!t.have_base) {
    t.have_base = true;
    t.synced_size = size;
  }
  Undo u;
  u.offset = off;
  u.new_end = off + n;
  if (off < size) {
    const sqlite3_int64 len = std::min<sqlite3_int64>(n, size - off);
    u.old.resize(static_cast<std::size_t>(len));
    if (ff->real->pMethods->xRead(ff->real, u.old.data(), static_cast<int>(len), off) != SQLITE_OK)
      u.old.clear();
  }
  t.undo.push_back(std::move(u));
}

// The power goes off: every open file back to its last synced image (locked).
void PowerOff() {
  const bool torn = g_plan.tear.load();
  for (FaultFile* ff : g_files) {
    Tracked& t = *ff->tracked;
    if (!t.have_base) continue;
    for (auto it = t.undo.rbegin(); it != t.undo.rend(); ++it) {
      const Undo& u = *it;
      if (torn) {
        // Keep the first half of what was written, put back the rest.
        const sqlite3_int64 keep = (u.new_end - u.offset) / 2;
        if (static_cast<sqlite3_int64>(u.old.size()) > keep) {
          ff->real->pMethods->xWrite(ff->real, u.old.data() + keep,
                                     static_cast<int>(u.old.size() - static_cast<std::size_t>(keep)),
                                     u.offset + keep);
        }
      } else if (!u.old.empty()) {
        ff->real->pMethods->xWrite(ff->real, u.old.data(), static_cast<int>(u.old.size()), u.offset);
      }
    }
    sqlite3_int64 size = 0;
    ff->real->pMethods->xFileSize(ff->real, &size);
    sqlite3_int64 keep_to = t.synced_size;
    if (torn && !t.undo.empty()) {
      // A torn append keeps the first half of the bytes written past the synced end.
      sqlite3_int64 furthest = t.synced_size;
      for (const Undo& u : t.undo) {
        if (u.new_end > t.synced_size) furthest = std::max(furthest, u.offset + (u.new_end - u.offset) / 2);
      }
      keep_to = std::min(size, furthest);
    }
    if (size > keep_to) ff->real->pMethods->xTruncate(ff->real, keep_to);
    ff->real->pMethods->xSync(ff->real, SQLITE_SYNC_NORMAL);  // the image, made real
    t.undo.clear();
  }
  g_plan.powered_off = true;
}

bool Take(std::atomic<int>& counter) {
  int n = counter.load();
  while (n > 0) {
    if (counter.compare_exchange_weak(n, n - 1)) {
      ++g_plan.fired;
      return true;
    }
  }
  return false;
}

int Close(sqlite3_file* f) {
  auto* ff = reinterpret_cast<FaultFile*>(f);
  {
    std::lock_guard<std::mutex> lock(g_files_mu);
    g_files.erase(ff);
    delete ff->tracked;
    ff->tracked = nullptr;
  }
  return Real(f)->pMethods->xClose(Real(f));
}
int Read(sqlite3_file* f, void* p, int n, sqlite3_int64 off) {
  return Real(f)->pMethods->xRead(Real(f), p, n, off);
}
int Write(sqlite3_file* f, const void* p, int n, sqlite3_int64 off) {
  if (g_plan.powered_off) return SQLITE_IOERR_WRITE;
  if (Hit(g_plan.writes, g_plan.fail_write_at)) return g_plan.write_error.load();
  if (g_plan.track) {
    std::lock_guard<std::mutex> lock(g_files_mu);
    Remember(reinterpret_cast<FaultFile*>(f), off, n);
  }
  if (Take(g_plan.fail_writes)) return SQLITE_FULL;
  if (reinterpret_cast<FaultFile*>(f)->log_file && n > 1 && Take(g_plan.short_writes)) {
    Real(f)->pMethods->xWrite(Real(f), p, n / 2, off);
    return SQLITE_IOERR_WRITE;
  }
  return Real(f)->pMethods->xWrite(Real(f), p, n, off);
}
int Truncate(sqlite3_file* f, sqlite3_int64 size) {
  if (g_plan.powered_off) return SQLITE_IOERR_TRUNCATE;
  if (g_plan.track) {
    std::lock_guard<std::mutex> lock(g_files_mu);
    auto* ff = reinterpret_cast<FaultFile*>(f);
    sqlite3_int64 cur = 0;
    if (ff->real->pMethods->xFileSize(ff->real, &cur) == SQLITE_OK && cur > size) {
      Remember(ff, size, static_cast<int>(std::min<sqlite3_int64>(cur - size, 1 << 30)));
      ff->tracked->undo.back().new_end = size;  // nothing written: the tail comes back whole
    }
  }
  return Real(f)->pMethods->xTruncate(Real(f), size);
}
int Sync(sqlite3_file* f, int flags) {
  if (g_plan.powered_off) return SQLITE_IOERR_FSYNC;
  const int n = g_plan.syncs.load();
  if (Hit(g_plan.syncs, g_plan.fail_sync_at)) return SQLITE_IOERR_FSYNC;
  if (g_plan.power_fail_at.load() >= 0 && n >= g_plan.power_fail_at.load()) {
    std::lock_guard<std::mutex> lock(g_files_mu);
    g_plan.power_fail_at = -1;
    ++g_plan.fired;
    PowerOff();
    return SQLITE_IOERR_FSYNC;
  }
  if (Take(g_plan.fail_syncs)) return SQLITE_IOERR_FSYNC;
  const int rc = Real(f)->pMethods->xSync(Real(f), flags);
  if (rc == SQLITE_OK && g_plan.track) {
    std::lock_guard<std::mutex> lock(g_files_mu);
    auto* ff = reinterpret_cast<FaultFile*>(f);
    ff->tracked->undo.clear();
    sqlite3_int64 size = 0;
    if (ff->real->pMethods->xFileSize(ff->real, &size) == SQLITE_OK) {
      ff->tracked->have_base = true;
      ff->tracked->synced_size = size;
    }
  }
  return rc;
}
int FileSize(sqlite3_file* f, sqlite3_int64* size) { return Real(f)->pMethods->xFileSize(Real(f), size); }
int Lock(sqlite3_file* f, int l) { return Real(f)->pMethods->xLock(Real(f), l); }
int Unlock(sqlite3_file* f, int l) { return Real(f)->pMethods->xUnlock(Real(f), l); }
int CheckReservedLock(sqlite3_file* f, int* out) {
  return Real(f)->pMethods->xCheckReservedLock(Real(f), out);
}
int FileControl(sqlite3_file* f, int op, void* arg) {
  return Real(f)->pMethods->xFileControl(Real(f), op, arg);
}
int SectorSize(sqlite3_file* f) { return Real(f)->pMethods->xSectorSize(Real(f)); }
int DeviceCharacteristics(sqlite3_file* f) { return Real(f)->pMethods->xDeviceCharacteristics(Real(f)); }
int ShmMap(sqlite3_file* f, int pg, int sz, int extend, void volatile** pp) {
  return Real(f)->pMethods->xShmMap(Real(f), pg, sz, extend, pp);
}
int ShmLock(sqlite3_file* f, int off, int n, int flags) {
  return Real(f)->pMethods->xShmLock(Real(f), off, n, flags);
}
void ShmBarrier(sqlite3_file* f) { Real(f)->pMethods->xShmBarrier(Real(f)); }
int ShmUnmap(sqlite3_file* f, int del) { return Real(f)->pMethods->xShmUnmap(Real(f), del); }
int Fetch(sqlite3_file* f, sqlite3_int64 off, int n, void** pp) {
  return Real(f)->pMethods->xFetch(Real(f), off, n, pp);
}
int Unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  return Real(f)->pMethods->xUnfetch(Real(f), off, p);
}

const sqlite3_io_methods kMethods = {3,
                                     Close,
                                     Read,
                                     Write,
                                     Truncate,
                                     Sync,
                                     FileSize,
                                     Lock,
                                     Unlock,
                                     CheckReservedLock,
                                     FileControl,
                                     SectorSize,
                                     DeviceCharacteristics,
                                     ShmMap,
                                     ShmLock,
                                     ShmBarrier,
                                     ShmUnmap,
                                     Fetch,
                                     Unfetch};

int Open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  auto* ff = reinterpret_cast<FaultFile*>(f);
  ff->real = reinterpret_cast<sqlite3_file*>(ff + 1);
  ff->log_file = (flags & (SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL)) != 0;
  ff->tracked = nullptr;
  int rc = g_real->xOpen(g_real, name, ff->real, flags, out_flags);
  ff->base.pMethods = ff->real->pMethods != nullptr ? &kMethods : nullptr;
  if (ff->base.pMethods != nullptr) {
    std::lock_guard<std::mutex> lock(g_files_mu);
    ff->tracked = new Tracked();
    // A file created after tracking began had nothing durable: its synced image is empty.
    if (g_plan.track) {
      sqlite3_int64 size = 0;
      if (ff->real->pMethods->xFileSize(ff->real, &size) == SQLITE_OK) {
        ff->tracked->have_base = true;
        ff->tracked->synced_size = size;
      }
    }
    g_files.insert(ff);
  }
  return rc;
}

int Delete(sqlite3_vfs*, const char* name, int sync_dir) { return g_real->xDelete(g_real, name, sync_dir); }
int Access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return g_real->xAccess(g_real, name, flags, out);
}
int FullPathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return g_real->xFullPathname(g_real, name, n, out);
}
void* DlOpen(sqlite3_vfs*, const char* name) { return g_real->xDlOpen(g_real, name); }
void DlError(sqlite3_vfs*, int n, char* msg) { g_real->xDlError(g_real, n, msg); }
void (*DlSym(sqlite3_vfs*, void* h, const char* sym))(void) { return g_real->xDlSym(g_real, h, sym); }
void DlClose(sqlite3_vfs*, void* h) { g_real->xDlClose(g_real, h); }
int Randomness(sqlite3_vfs*, int n, char* out) { return g_real->xRandomness(g_real, n, out); }
int Sleep(sqlite3_vfs*, int us) { return g_real->xSleep(g_real, us); }
int CurrentTime(sqlite3_vfs*, double* t) { return g_real->xCurrentTime(g_real, t); }
int GetLastError(sqlite3_vfs*, int n, char* s) { return g_real->xGetLastError(g_real, n, s); }
int CurrentTimeInt64(sqlite3_vfs*, sqlite3_int64* t) { return g_real->xCurrentTimeInt64(g_real, t); }

}  // namespace

void FaultPlan::ArmPowerLoss(int at, bool torn) {
  std::lock_guard<std::mutex> lock(g_files_mu);
  for (FaultFile* ff : g_files) {
    ff->tracked->undo.clear();
    ff->tracked->have_base = false;  // the base is taken at the file's next write
  }
  syncs = 0;
  writes = 0;
  fired = 0;
  tear = torn;
  powered_off = false;
  power_fail_at = at;
  track = true;
}

void FaultPlan::PowerOffNow() {
  std::lock_guard<std::mutex> lock(g_files_mu);
  if (powered_off) return;
  power_fail_at = -1;
  ++fired;
  PowerOff();
}

FaultPlan& FaultVfs() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_real = sqlite3_vfs_find(nullptr);
    g_vfs.iVersion = 2;
    g_vfs.szOsFile = static_cast<int>(sizeof(FaultFile)) + g_real->szOsFile;
    g_vfs.mxPathname = g_real->mxPathname;
    g_vfs.zName = kFaultVfsName;
    g_vfs.xOpen = Open;
    g_vfs.xDelete = Delete;
    g_vfs.xAccess = Access;
    g_vfs.xFullPathname = FullPathname;
    g_vfs.xDlOpen = DlOpen;
    g_vfs.xDlError = DlError;
    g_vfs.xDlSym = DlSym;
    g_vfs.xDlClose = DlClose;
    g_vfs.xRandomness = Randomness;
    g_vfs.xSleep = Sleep;
    g_vfs.xCurrentTime = CurrentTime;
    g_vfs.xGetLastError = GetLastError;
    g_vfs.xCurrentTimeInt64 = CurrentTimeInt64;
    sqlite3_vfs_register(&g_vfs, 0);
  });
  return g_plan;
}

}  // namespace sk::store
