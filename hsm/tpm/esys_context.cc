#include "hsm/tpm/esys_context.h"

#include <tss2/tss2_tctildr.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>

#include "hsm/tpm/tpm_errors.h"

namespace sk::hsm::tpm {

void QuietTssLogs() {
  static std::once_flag once;
  std::call_once(once, [] { ::setenv("TSS2_LOG", "all+NONE", /*overwrite=*/0); });
}

Result<std::unique_ptr<EsysContext>> EsysContext::Open(const std::string& tcti) {
  QuietTssLogs();
  std::unique_ptr<EsysContext> c(new EsysContext());
  c->tcti_name_ = tcti;
  TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti.c_str(), &c->tcti_);
  if (rc != TSS2_RC_SUCCESS) {
    c->tcti_ = nullptr;
    return Status(Code::kUnavailable, kTpmUnavailable,
                  "cannot connect to the TPM through TCTI '" + tcti + "': " + DescribeRc(rc));
  }
  rc = Esys_Initialize(&c->esys_, c->tcti_, nullptr);
  if (rc != TSS2_RC_SUCCESS) {
    c->esys_ = nullptr;
    return Status(Code::kUnavailable, kTpmUnavailable,
                  "cannot initialise ESYS over TCTI '" + tcti + "': " + DescribeRc(rc));
  }
  return c;
}

EsysContext::~EsysContext() {
  if (esys_ != nullptr) Esys_Finalize(&esys_);
  if (tcti_ != nullptr) Tss2_TctiLdr_Finalize(&tcti_);
}

ScopedTr::ScopedTr(ScopedTr&& other) noexcept
    : ctx_(other.ctx_), tr_(std::exchange(other.tr_, ESYS_TR_NONE)), kind_(other.kind_) {}

ScopedTr& ScopedTr::operator=(ScopedTr&& other) noexcept {
  if (this != &other) {
    Reset();
    ctx_ = other.ctx_;
    kind_ = other.kind_;
    tr_ = std::exchange(other.tr_, ESYS_TR_NONE);
  }
  return *this;
}

void ScopedTr::Reset() {
  if (tr_ == ESYS_TR_NONE || ctx_ == nullptr) return;
  // Sessions keep no auth value of their own; objects and NV indices may.
  (void)SetAuth(ctx_, tr_, nullptr, 0);
  if (kind_ == Kind::kFlush) {
    // A failed flush (TPM gone) leaves nothing we could do; ESYS drops the record anyway
    // only on success, so close it then.
    if (Esys_FlushContext(ctx_, tr_) != TSS2_RC_SUCCESS) Esys_TR_Close(ctx_, &tr_);
  } else {
    Esys_TR_Close(ctx_, &tr_);
  }
  tr_ = ESYS_TR_NONE;
}

void Wipe(void* p, std::size_t n) {
  volatile std::uint8_t* b = static_cast<volatile std::uint8_t*>(p);
  for (std::size_t i = 0; i < n; ++i) b[i] = 0;
}

std::size_t AuthSize(const std::uint8_t* data, std::size_t size) {
  while (size > 0 && data[size - 1] == 0) --size;
  return size;
}

Status SetAuth(ESYS_CONTEXT* ctx, ESYS_TR tr, const std::uint8_t* data, std::size_t size) {
  TPM2B_AUTH auth{};
  if (data != nullptr) size = AuthSize(data, size);
  if (size > sizeof auth.buffer) return InvalidArgument("auth value longer than 64 bytes");
  if (size > 0) std::memcpy(auth.buffer, data, size);
  auth.size = static_cast<UINT16>(size);
  // The whole struct is copied, so an empty one also overwrites a stored value.
  TSS2_RC rc = Esys_TR_SetAuth(ctx, tr, &auth);
  Wipe(&auth, sizeof auth);
  if (rc != TSS2_RC_SUCCESS) return TpmError("Esys_TR_SetAuth", rc);
  return OkStatus();
}

namespace {

std::string PropertyChars(std::uint32_t v) {
  std::string s;
  for (int shift = 24; shift >= 0; shift -= 8) {
    char c = static_cast<char>((v >> shift) & 0xFF);
    if (c >= 0x21 && c <= 0x7E) s.push_back(c);
  }
  return s;
}

}  // namespace

Result<std::string> DescribeTpm(ESYS_CONTEXT* ctx) {
  TPMI_YES_NO more = TPM2_NO;
  TPMS_CAPABILITY_DATA* raw = nullptr;
  // All fixed properties: the response (several hundred bytes) covers the whole region
  // an unseal response used.
  TSS2_RC rc = Esys_GetCapability(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
                                  TPM2_PT_FIXED, TPM2_MAX_TPM_PROPERTIES, &more, &raw);
  if (rc != TSS2_RC_SUCCESS) return TpmError("TPM2_GetCapability", rc);
  EsysPtr<TPMS_CAPABILITY_DATA> data(raw);
  std::string manufacturer, vendor;
  std::uint32_t fw1 = 0;
  const TPML_TAGGED_TPM_PROPERTY& props = data->data.tpmProperties;
  for (UINT32 i = 0; i < props.count && i < TPM2_MAX_TPM_PROPERTIES; ++i) {
    const TPMS_TAGGED_PROPERTY& p = props.tpmProperty[i];
    if (p.property == TPM2_PT_MANUFACTURER) manufacturer = PropertyChars(p.value);
    if (p.property >= TPM2_PT_VENDOR_STRING_1 && p.property <= TPM2_PT_VENDOR_STRING_4)
      vendor += PropertyChars(p.value);
    if (p.property == TPM2_PT_FIRMWARE_VERSION_1) fw1 = p.value;
  }
  char fw[32];
  std::snprintf(fw, sizeof fw, "0x%08x", fw1);
  std::string out = manufacturer.empty() ? "unknown manufacturer" : manufacturer;
  if (!vendor.empty()) out += " " + vendor;
  return out + " (firmware " + fw + ")";
}

}  // namespace sk::hsm::tpm
