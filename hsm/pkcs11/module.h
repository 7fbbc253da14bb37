// A loaded, initialised PKCS#11 module, shared process-wide (internal to hsm/pkcs11/).
//
// A PKCS#11 library may be C_Initialize()d once per process, and C_Finalize() ends it
// for every user in the process. So modules live in one registry keyed by the module's
// real path (symlinks resolved), with a reference count:
//   - the first LoadModule() of a path dlopen()s it, calls C_GetFunctionList and
//     C_Initialize (CKF_OS_LOCKING_OK: the module uses OS mutexes; we call it from
//     many threads);
//   - later LoadModule()s of the same path share that initialisation;
//   - when the last Module of a path is destroyed, C_Finalize runs, so the next
//     LoadModule() initialises afresh (SoftHSM2 then re-reads $SOFTHSM2_CONF).
// Acquire and release happen under one mutex, so a finalize never races an initialise.
// If something else in the process initialised the module first
// (CKR_CRYPTOKI_ALREADY_INITIALIZED), sealkeep uses it and never finalizes it.
//
// Modules are dlopen()ed once and stay mapped for the life of the process, even after
// C_Finalize: unloading a library that registered atexit handlers or thread-local
// state (SoftHSM2 links OpenSSL) is not safe, and re-initialising needs no reload.
// A file that turns out not to be a PKCS#11 module is dlclose()d again.
//
// Errors: module_not_found (kNotFound) when the path does not exist or cannot be
// resolved; not_a_pkcs11_module (kInvalidArgument) when dlopen() refuses it, it has no
// C_GetFunctionList, or that returns no usable function list; pkcs11_error when
// C_Initialize fails.
//
// Thread safety: LoadModule and ~Module are thread-safe. fn() is immutable; whether
// its functions may be called concurrently is the module's business (PKCS#11: yes,
// on different sessions, once initialised with locking).
#pragma once

#include <memory>
#include <string>

#include "crypto/status.h"
#include "hsm/pkcs11/p11.h"

namespace sk::hsm::pkcs11 {

class Module {
 public:
  ~Module();  // releases this reference; the last one C_Finalize()s
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The module's function list. Valid while this Module lives.
  const ck_function_list& fn() const { return *fn_; }
  // The resolved path the registry knows it by.
  const std::string& path() const { return path_; }

 private:
  friend Result<std::shared_ptr<Module>> LoadModule(const std::string& path);
  Module(std::string path, const ck_function_list* fn) : path_(std::move(path)), fn_(fn) {}

  std::string path_;
  const ck_function_list* fn_;
};

Result<std::shared_ptr<Module>> LoadModule(const std::string& path);

// How many live references the registry holds for `path` (0 when not initialised).
// For tests of the registry.
std::size_t ModuleReferences(const std::string& path);

}  // namespace sk::hsm::pkcs11
