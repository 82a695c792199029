#!/usr/bin/env bash
# deploy/check_skips.py on a real `ctest --output-junit` report: an unlisted
# skip fails the run, a listed one does not, a clean run passes.
set -euo pipefail
src=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
cat > CTestTestfile.cmake <<'CT'
add_test(skipper "/bin/sh" "-c" "echo '[  SKIPPED ] needs something'")
set_tests_properties(skipper PROPERTIES SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")
add_test(passer "/bin/true")
CT
ctest --output-junit junit.xml > ctest.log 2>&1 || { cat ctest.log; exit 1; }
grep -q 'skipper' junit.xml
: > none.txt
if python3 "$src/deploy/check_skips.py" junit.xml none.txt > out.txt 2>&1; then
  echo "FAIL: an unlisted skip passed"; cat out.txt; exit 1
fi
grep -q 'UNEXPECTED): skipper' out.txt || { echo "FAIL: skip not named"; cat out.txt; exit 1; }
printf 'skipper  # allowed here\n' > allow.txt
python3 "$src/deploy/check_skips.py" junit.xml allow.txt > out.txt 2>&1 || {
  echo "FAIL: a listed skip failed"; cat out.txt; exit 1; }
cat > CTestTestfile.cmake <<'CT'
add_test(passer "/bin/true")
CT
ctest --output-junit junit.xml > ctest.log 2>&1
python3 "$src/deploy/check_skips.py" junit.xml none.txt > out.txt 2>&1 || {
  echo "FAIL: a clean run failed"; cat out.txt; exit 1; }
if python3 "$src/deploy/check_skips.py" missing.xml none.txt > out.txt 2>&1; then
  echo "FAIL: a missing report passed"; exit 1
fi
echo "check_skips_test: ok"
