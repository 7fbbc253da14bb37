#include "hsm/pkcs11/module.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "hsm/pkcs11/errors.h"

namespace sk::hsm::pkcs11 {
namespace {

struct Entry {
  void* dl = nullptr;  // stays open for the life of the process
  ck_function_list* fn = nullptr;
  std::size_t refs = 0;
  bool we_initialised = false;  // false: someone else in the process did; never finalize
};

struct Registry {
  std::mutex mu;
  std::map<std::string, Entry> entries;  // by resolved path
};

Registry& TheRegistry() {
  static auto* registry = new Registry();  // never destroyed: modules outlive static teardown
  return *registry;
}

Result<std::string> ResolvePath(const std::string& path) {
  if (path.empty()) return Status(Code::kNotFound, "module_not_found", "no PKCS#11 module path given");
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) {
    int err = errno;
    return Status(Code::kNotFound, "module_not_found",
                  "PKCS#11 module " + path + " cannot be found: " + std::strerror(err));
  }
  return std::string(buf);
}

Status NotAModule(const std::string& path, const std::string& why) {
  return Status(Code::kInvalidArgument, "not_a_pkcs11_module", path + " is not a PKCS#11 module: " + why);
}

// dlopen()s `path` and fetches its function list into `e` (the registry lock is held).
Status OpenLibrary(const std::string& path, Entry& e) {
  if (e.dl == nullptr) {
    ::dlerror();
    void* dl = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (dl == nullptr) {
      const char* err = ::dlerror();
      return NotAModule(path, err != nullptr ? err : "dlopen failed");
    }
    auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(dl, "C_GetFunctionList"));
    if (get == nullptr) {
      ::dlclose(dl);
      return NotAModule(path, "it has no C_GetFunctionList symbol");
    }
    ck_function_list* fn = nullptr;
    ck_rv_t rv = get(&fn);
    if (rv != CKR_OK || fn == nullptr || fn->C_Initialize == nullptr) {
      ::dlclose(dl);
      return NotAModule(path, "C_GetFunctionList returned " + RvName(rv));
    }
    if (fn->version.major < 2) {
      ::dlclose(dl);
      return NotAModule(path, "it implements Cryptoki " + std::to_string(fn->version.major) + "." +
                                  std::to_string(fn->version.minor) + ", sealkeep needs 2.x or later");
    }
    e.dl = dl;
    e.fn = fn;
  }
  return OkStatus();
}

}  // namespace

Result<std::shared_ptr<Module>> LoadModule(const std::string& path) {
  SK_ASSIGN_OR_RETURN(std::string real, ResolvePath(path));
  Registry& reg = TheRegistry();
  std::lock_guard lock(reg.mu);
  Entry& e = reg.entries[real];
  if (e.refs == 0) {
    Status st = OpenLibrary(real, e);
    if (!st.ok()) {
      if (e.dl == nullptr) reg.entries.erase(real);
      return st;
    }
    ck_c_initialize_args args{};
    args.flags = CKF_OS_LOCKING_OK;
    ck_rv_t rv = e.fn->C_Initialize(&args);
    if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
      e.we_initialised = false;
    } else if (rv == CKR_OK) {
      e.we_initialised = true;
    } else {
      return RvError(rv, "C_Initialize of " + real);
    }
  }
  ++e.refs;
  return std::shared_ptr<Module>(new Module(real, e.fn));
}

Module::~Module() {
  Registry& reg = TheRegistry();
  std::lock_guard lock(reg.mu);
  auto it = reg.entries.find(path_);
  if (it == reg.entries.end() || it->second.refs == 0) return;  // cannot happen
  Entry& e = it->second;
  if (--e.refs == 0 && e.we_initialised) {
    e.fn->C_Finalize(nullptr);
    e.we_initialised = false;
  }
}

std::size_t ModuleReferences(const std::string& path) {
  auto real = ResolvePath(path);
  if (!real.ok()) return 0;
  Registry& reg = TheRegistry();
  std::lock_guard lock(reg.mu);
  auto it = reg.entries.find(*real);
  return it == reg.entries.end() ? 0 : it->second.refs;
}

}  // namespace sk::hsm::pkcs11
