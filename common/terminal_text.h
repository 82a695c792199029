// Text from a sweep is data: before it reaches a terminal (or a CSV file) its
// control characters are made visible instead of acted on. A submitter's
// project name, trial value, metric name or error text can otherwise move the
// cursor, rewrite lines, retitle the window or worse (ESC sequences), or hide
// text (bidi overrides).
#pragma once

#include <streambuf>
#include <string>
#include <string_view>

namespace qsweep {

// Replaces what a terminal would act on by a visible escape:
//   C0 controls (except '\n' when `keep_newlines`) and DEL -> \xNN ("\t" -> \t,
//   '\r' -> \r), C1 controls U+0080-U+009F and the bidi controls U+202A-U+202E,
//   U+2066-U+2069 -> \uNNNN, and bytes that are not valid UTF-8 -> \xNN.
// Everything else (printable ASCII, valid UTF-8) is unchanged.
std::string TerminalSafe(std::string_view text, bool keep_newlines = true);

// True when TerminalSafe(text, keep_newlines) == text.
bool IsTerminalSafe(std::string_view text, bool keep_newlines = true);

// A stream buffer that writes everything through TerminalSafe (newlines
// kept) to `target`. In kJson mode the escapes are JSON's (\u007f, \u0085,
// ...) so that JSON output stays valid JSON (nlohmann already escapes C0
// inside strings). A UTF-8 sequence split across writes is handled; an
// unfinished one is escaped at flush. Not thread-safe.
class TerminalSafeBuf final : public std::streambuf {
 public:
  enum class Mode { kText, kJson };
  TerminalSafeBuf(std::streambuf* target, Mode mode) : target_(target), mode_(mode) {}
  ~TerminalSafeBuf() override { FlushPending(); }
  std::streambuf* target() const { return target_; }
  void set_mode(Mode mode) { mode_ = mode; }

 protected:
  int_type overflow(int_type ch) override;
  std::streamsize xsputn(const char* s, std::streamsize n) override;
  int sync() override;

 private:
  void Put(std::string_view bytes);
  void FlushPending();
  std::streambuf* target_;
  Mode mode_;
  std::string pending_;  // an unfinished UTF-8 sequence
};

// The raw buffer under `buf` if it is a TerminalSafeBuf, else `buf`: for
// qsweep's own cursor control (the watch progress line).
std::streambuf* RawBuffer(std::streambuf* buf);

}  // namespace qsweep
