// Internal to crypto/: RAII over mbedTLS's P-256 group, point and number types, and the
// random source mbedTLS is given. Shared by the recovery wrap (ECIES) and ECDSA.
#pragma once

#include <mbedtls/ecp.h>

#include <cstddef>

#include "crypto/random.h"

namespace sk::p256 {

inline int Rng(void*, unsigned char* out, std::size_t n) { return FillRandom({out, n}).ok() ? 0 : -1; }

struct Group {
  mbedtls_ecp_group g;
  Group() {
    mbedtls_ecp_group_init(&g);
    mbedtls_ecp_group_load(&g, MBEDTLS_ECP_DP_SECP256R1);
  }
  ~Group() { mbedtls_ecp_group_free(&g); }
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;
};
struct Point {
  mbedtls_ecp_point p;
  Point() { mbedtls_ecp_point_init(&p); }
  ~Point() { mbedtls_ecp_point_free(&p); }
  Point(const Point&) = delete;
  Point& operator=(const Point&) = delete;
};
struct Mpi {
  mbedtls_mpi m;
  Mpi() { mbedtls_mpi_init(&m); }
  ~Mpi() { mbedtls_mpi_free(&m); }  // wipes its limbs
  Mpi(const Mpi&) = delete;
  Mpi& operator=(const Mpi&) = delete;
};

}  // namespace sk::p256
