// Global flags (those every service command takes: --server, --token-file,
// TLS files, --format) may come before the command, as users type them:
// `qsweep --server HOST:PORT submit sweep.toml`. Header-only, so that the
// qsweep executable and its tests share the one definition.
#pragma once

#include <string>
#include <vector>

namespace qsweep {

// `args` (argv without the program) with leading global flags moved to just
// after the command; unchanged when it does not start with one. A flag takes
// its value from the next argument unless written --flag=value.
inline std::vector<std::string> CommandFirst(const std::vector<std::string>& args) {
  static const char* kGlobal[] = {"--server",   "--token-file", "--tls-ca",
                                  "--tls-cert", "--tls-key",    "--format"};
  std::vector<std::string> flags;
  size_t i = 0;
  while (i < args.size()) {
    const std::string& a = args[i];
    const std::string name = a.substr(0, a.find('='));
    bool global = false;
    for (const char* g : kGlobal) global |= name == g;
    if (!global) break;
    flags.push_back(a);
    ++i;
    if (a.find('=') == std::string::npos && i < args.size()) flags.push_back(args[i++]);
  }
  if (flags.empty() || i >= args.size()) return args;  // no command: let the caller complain
  std::vector<std::string> out = {args[i]};
  out.insert(out.end(), flags.begin(), flags.end());
  out.insert(out.end(), args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
  return out;
}

}  // namespace qsweep
