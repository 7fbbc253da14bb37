// Helpers of the KV v2 tests (tests/kv): run a real program (a Vault client script) under a
// given identity and collect what it printed, and find the clients. Nothing is skipped: a
// missing client is a test failure that says how to install it.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

namespace sk::testing {

struct ProgramRun {
  int status = -1;                              // exit status; 128+N for signal N; -1 when it could not run
  std::string output;                           // stdout and stderr, interleaved as written
  bool Printed(const std::string& line) const;  // `line` is one whole line of the output
};

// Runs argv[0] (an absolute path) with `argv` and a minimal environment (PATH, LANG; no
// proxy settings, nothing secret), after `become` (empty: as this process) in the child.
ProgramRun RunProgram(const std::vector<std::string>& argv, const std::function<bool()>& become = {});

// /usr/bin/python3, if it can import hvac and requests_unixsocket; else "" and *why says
// how to install them.
std::string HvacPython(std::string* why);
// The node binary, if node-vault (both pins) is installed in tests/kv/node; else "" and
// *why says how to install it.
std::string NodeWithVault(std::string* why);

// The source tree's tests/kv folder.
std::string KvTestDir();

}  // namespace sk::testing
