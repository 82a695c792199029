# Shared compile settings and the two helpers every module uses.

set(QSWEEP_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wno-unused-parameter)

# qsweep_add_library(NAME SOURCES ... [PUBLIC_DEPS ...] [PRIVATE_DEPS ...])
# Creates qsweep_<NAME> with the alias qsweep::<NAME>. The include root is the
# repository root, so headers are included as "worker/core/data/dataset.h".
function(qsweep_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(qsweep_${name} STATIC ${ARG_SOURCES})
  add_library(qsweep::${name} ALIAS qsweep_${name})
  target_include_directories(qsweep_${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(qsweep_${name} PRIVATE ${QSWEEP_WARNINGS})
  target_link_libraries(qsweep_${name} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
endfunction()

# qsweep_add_test(NAME SOURCES ... DEPS ... [LABELS ...])
# One GoogleTest binary; each test case becomes a ctest test.
function(qsweep_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${QSWEEP_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})  # tests/common/*.h
  target_compile_definitions(${name} PRIVATE
    QSWEEP_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    QSWEEP_BINARY_DIR="${PROJECT_BINARY_DIR}")
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60
    PROPERTIES LABELS "${ARG_LABELS}")
endfunction()
