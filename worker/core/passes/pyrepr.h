// Python-style rendering of small value trees: repr() of None/bool/int/float/
// str/list/dict and pprint.pformat (width 80, dict keys sorted). MASE prints
// node metadata and pass results this way, so reports that mirror MASE's text
// use these helpers. Torch-free.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace qsweep {

// A Python value. kRaw holds text printed verbatim (e.g. "torch.float32" or a
// node name, which Python prints without quotes).
struct PyValue {
  enum class Kind { kNone, kBool, kInt, kFloat, kStr, kRaw, kList, kDict };
  // Special members are defaulted after the class: PyValue holds containers of
  // itself, which clang (with libstdc++) refuses to check while it is incomplete.
  PyValue();
  ~PyValue();
  PyValue(const PyValue&);
  PyValue(PyValue&&) noexcept;
  PyValue& operator=(const PyValue&);
  PyValue& operator=(PyValue&&) noexcept;

  Kind kind = Kind::kNone;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  std::string s;
  std::vector<PyValue> list;
  std::vector<std::pair<std::string, PyValue>> dict;  // insertion order; printing sorts

  static PyValue None();
  static PyValue Bool(bool v);
  static PyValue Int(int64_t v);
  static PyValue Float(double v);
  static PyValue Str(std::string v);
  static PyValue Raw(std::string v);
  static PyValue List(std::vector<PyValue> v);
  static PyValue Dict();
  // Appends or replaces key `k` (dicts only).
  PyValue& Set(const std::string& k, PyValue v);
};

inline PyValue::PyValue() = default;
inline PyValue::~PyValue() = default;
inline PyValue::PyValue(const PyValue&) = default;
inline PyValue::PyValue(PyValue&&) noexcept = default;
inline PyValue& PyValue::operator=(const PyValue&) = default;
inline PyValue& PyValue::operator=(PyValue&&) noexcept = default;
inline PyValue PyValue::None() { return {}; }

// JSON -> PyValue: null -> None, integers -> int, other numbers -> float.
PyValue PyFromJson(const nlohmann::ordered_json& j);
PyValue PyFromJson(const nlohmann::json& j);

// Python's repr(float): shortest round-trip digits, fixed notation for
// exponents in [-4, 16), otherwise "1e-05" / "1.5e+16"; "nan", "inf".
std::string PyFloatRepr(double v);
// Python's repr(str) for ASCII text (single quotes unless the text has one).
std::string PyStrRepr(const std::string& s);

// repr(value), dict keys in insertion order (like Python's repr).
std::string PyRepr(const PyValue& v);
// pprint.pformat(value) with width 80, indent 1, dict keys sorted.
std::string PyPformat(const PyValue& v, int width = 80);

}  // namespace qsweep
