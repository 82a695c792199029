#include "common/terminal_text.h"

#include <cstdint>
#include <cstdio>

namespace qsweep {
namespace {

enum class Style { kText, kJson };

void Hex(std::string& out, unsigned value, Style style, bool codepoint) {
  char buf[16];
  if (style == Style::kJson || codepoint)
    std::snprintf(buf, sizeof(buf), "\\u%04x", value);
  else
    std::snprintf(buf, sizeof(buf), "\\x%02x", value);
  out += buf;
}

// Length of the valid UTF-8 sequence at s[i] and its code point; 0 if
// invalid, -1 if it may be valid but is cut off at the end of `s`.
int Utf8At(std::string_view s, size_t i, uint32_t& cp) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  int len;
  uint32_t min;
  if (c < 0x80) {
    cp = c;
    return 1;
  } else if (c >= 0xc2 && c <= 0xdf) {
    len = 2, cp = c & 0x1f, min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3, cp = c & 0x0f, min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  for (int k = 1; k < len; ++k) {
    if (i + k >= s.size()) return -1;
    const unsigned char d = static_cast<unsigned char>(s[i + k]);
    if ((d & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (d & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

bool Visible(uint32_t cp) {
  return !((cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069));
}

// Appends the safe form of s[0..); returns how many bytes were consumed (all
// but a trailing cut-off UTF-8 sequence when `partial_ok`).
size_t Escape(std::string_view s, bool keep_newlines, Style style, bool partial_ok,
              std::string& out) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      if (c == '\n' && keep_newlines)
        out += '\n';
      else if (c == '\t')
        out += "\\t";
      else if (c == '\r')
        out += "\\r";
      else if (c == '\n')
        out += "\\n";
      else
        Hex(out, c, style, false);
      ++i;
      continue;
    }
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    uint32_t cp = 0;
    const int len = Utf8At(s, i, cp);
    if (len == -1 && partial_ok) return i;
    if (len <= 0) {
      Hex(out, c, style, false);  // in JSON mode: \u00NN, i.e. the byte as Latin-1
      ++i;
      continue;
    }
    if (Visible(cp))
      out.append(s.substr(i, static_cast<size_t>(len)));
    else
      Hex(out, cp, style, true);
    i += static_cast<size_t>(len);
  }
  return i;
}

}  // namespace

std::string TerminalSafe(std::string_view text, bool keep_newlines) {
  std::string out;
  out.reserve(text.size());
  Escape(text, keep_newlines, Style::kText, false, out);
  return out;
}

bool IsTerminalSafe(std::string_view text, bool keep_newlines) {
  return TerminalSafe(text, keep_newlines) == text;
}

void TerminalSafeBuf::Put(std::string_view bytes) {
  std::string in = pending_;
  in.append(bytes);
  std::string out;
  const size_t used =
      Escape(in, true, mode_ == Mode::kJson ? Style::kJson : Style::kText, true, out);
  pending_ = in.substr(used);
  target_->sputn(out.data(), static_cast<std::streamsize>(out.size()));
}

void TerminalSafeBuf::FlushPending() {
  if (pending_.empty()) return;
  std::string out;
  Escape(pending_, true, mode_ == Mode::kJson ? Style::kJson : Style::kText, false, out);
  pending_.clear();
  target_->sputn(out.data(), static_cast<std::streamsize>(out.size()));
}

TerminalSafeBuf::int_type TerminalSafeBuf::overflow(int_type ch) {
  if (traits_type::eq_int_type(ch, traits_type::eof())) return traits_type::not_eof(ch);
  const char c = traits_type::to_char_type(ch);
  Put(std::string_view(&c, 1));
  return ch;
}

std::streamsize TerminalSafeBuf::xsputn(const char* s, std::streamsize n) {
  Put(std::string_view(s, static_cast<size_t>(n)));
  return n;
}

int TerminalSafeBuf::sync() {
  FlushPending();
  return target_->pubsync();
}

std::streambuf* RawBuffer(std::streambuf* buf) {
  auto* safe = dynamic_cast<TerminalSafeBuf*>(buf);
  return safe != nullptr ? safe->target() : buf;
}

}  // namespace qsweep
