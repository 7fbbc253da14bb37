// The value of a call that must succeed in a fleet test: a failure is reported, then the
// test binary stops (there is nothing sensible to go on with).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>

#include "crypto/status.h"

namespace sk::fleet {

template <class T>
T Must(Result<T> r) {
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) std::abort();
  return std::move(*r);
}

}  // namespace sk::fleet
