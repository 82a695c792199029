#include "worker/core/passes/pyrepr.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>

namespace qsweep {

PyValue PyValue::Bool(bool v) {
  PyValue p;
  p.kind = Kind::kBool;
  p.b = v;
  return p;
}
PyValue PyValue::Int(int64_t v) {
  PyValue p;
  p.kind = Kind::kInt;
  p.i = v;
  return p;
}
PyValue PyValue::Float(double v) {
  PyValue p;
  p.kind = Kind::kFloat;
  p.f = v;
  return p;
}
PyValue PyValue::Str(std::string v) {
  PyValue p;
  p.kind = Kind::kStr;
  p.s = std::move(v);
  return p;
}
PyValue PyValue::Raw(std::string v) {
  PyValue p;
  p.kind = Kind::kRaw;
  p.s = std::move(v);
  return p;
}
PyValue PyValue::List(std::vector<PyValue> v) {
  PyValue p;
  p.kind = Kind::kList;
  p.list = std::move(v);
  return p;
}
PyValue PyValue::Dict() {
  PyValue p;
  p.kind = Kind::kDict;
  return p;
}

PyValue& PyValue::Set(const std::string& k, PyValue v) {
  for (auto& [key, val] : dict) {
    if (key == k) {
      val = std::move(v);
      return *this;
    }
  }
  dict.emplace_back(k, std::move(v));
  return *this;
}

namespace {

template <typename J>
PyValue FromJson(const J& j) {
  if (j.is_null()) return PyValue::None();
  if (j.is_boolean()) return PyValue::Bool(j.template get<bool>());
  if (j.is_number_integer()) return PyValue::Int(j.template get<int64_t>());
  if (j.is_number()) return PyValue::Float(j.template get<double>());
  if (j.is_string()) return PyValue::Str(j.template get<std::string>());
  if (j.is_array()) {
    std::vector<PyValue> items;
    for (const auto& e : j) items.push_back(FromJson(e));
    return PyValue::List(std::move(items));
  }
  PyValue d = PyValue::Dict();
  for (auto it = j.begin(); it != j.end(); ++it) d.Set(it.key(), FromJson(it.value()));
  return d;
}

std::vector<std::pair<std::string, PyValue>> SortedItems(const PyValue& v) {
  auto items = v.dict;
  std::stable_sort(items.begin(), items.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  return items;
}

std::string Repr(const PyValue& v, bool sort_dicts) {
  using K = PyValue::Kind;
  switch (v.kind) {
    case K::kNone:
      return "None";
    case K::kBool:
      return v.b ? "True" : "False";
    case K::kInt:
      return std::to_string(v.i);
    case K::kFloat:
      return PyFloatRepr(v.f);
    case K::kStr:
      return PyStrRepr(v.s);
    case K::kRaw:
      return v.s;
    case K::kList: {
      std::string out = "[";
      for (size_t i = 0; i < v.list.size(); ++i) {
        if (i) out += ", ";
        out += Repr(v.list[i], sort_dicts);
      }
      return out + "]";
    }
    case K::kDict: {
      std::string out = "{";
      auto items = sort_dicts ? SortedItems(v) : v.dict;
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        out += PyStrRepr(items[i].first) + ": " + Repr(items[i].second, sort_dicts);
      }
      return out + "}";
    }
  }
  return "";
}

// pprint's recursive formatter; mirrors PrettyPrinter._format with
// indent_per_level = 1, compact = False.
class Pformatter {
 public:
  explicit Pformatter(int width) : width_(width) {}

  void Format(const PyValue& v, int indent, int allowance) {
    std::string rep = Repr(v, true);
    int max_width = width_ - indent - allowance;
    if (static_cast<int>(rep.size()) > max_width) {
      if (v.kind == PyValue::Kind::kDict && !v.dict.empty())
        return FormatDict(v, indent, allowance);
      if (v.kind == PyValue::Kind::kList && !v.list.empty())
        return FormatList(v, indent, allowance);
    }
    out_ += rep;
  }

  std::string Take() { return std::move(out_); }

 private:
  void FormatDict(const PyValue& v, int indent, int allowance) {
    out_ += "{";
    auto items = SortedItems(v);
    indent += 1;
    allowance += 1;
    for (size_t i = 0; i < items.size(); ++i) {
      bool last = i + 1 == items.size();
      std::string key = PyStrRepr(items[i].first);
      out_ += key + ": ";
      Format(items[i].second, indent + static_cast<int>(key.size()) + 2, last ? allowance : 1);
      if (!last) out_ += ",\n" + std::string(indent, ' ');
    }
    out_ += "}";
  }

  void FormatList(const PyValue& v, int indent, int allowance) {
    out_ += "[";
    indent += 1;
    allowance += 1;
    for (size_t i = 0; i < v.list.size(); ++i) {
      bool last = i + 1 == v.list.size();
      if (i) out_ += ",\n" + std::string(indent, ' ');
      Format(v.list[i], indent, last ? allowance : 1);
    }
    out_ += "]";
  }

  int width_;
  std::string out_;
};

}  // namespace

PyValue PyFromJson(const nlohmann::ordered_json& j) { return FromJson(j); }
PyValue PyFromJson(const nlohmann::json& j) { return FromJson(j); }

std::string PyFloatRepr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0.0) return std::signbit(v) ? "-0.0" : "0.0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // e.g. "-1.2345e-05"
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t e = sci.find('e');
  int exp = std::atoi(sci.c_str() + e + 1);
  std::string digits;
  for (size_t i = 0; i < e; ++i)
    if (sci[i] != '.') digits += sci[i];
  std::string out;
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out = "0." + std::string(-exp - 1, '0') + digits;
    } else if (static_cast<int>(digits.size()) <= exp + 1) {
      out = digits + std::string(exp + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, exp + 1) + "." + digits.substr(exp + 1);
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof(eb), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += eb;
  }
  return neg ? "-" + out : out;
}

std::string PyStrRepr(const std::string& s) {
  char quote = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
  std::string out(1, quote);
  for (char c : s) {
    if (c == quote || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out += c;
    }
  }
  return out + quote;
}

std::string PyRepr(const PyValue& v) { return Repr(v, false); }

std::string PyPformat(const PyValue& v, int width) {
  Pformatter p(width);
  p.Format(v, 0, 0);
  return p.Take();
}

}  // namespace qsweep
