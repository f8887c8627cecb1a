# Fuzzing as a CTest test: builds every fuzz/fuzz_*.cpp with clang's
# libFuzzer + ASan + UBSan and runs each for a bounded time (fuzz/run.sh).
# Include from tests/CMakeLists.txt:   include(${CMAKE_CURRENT_SOURCE_DIR}/fuzz.cmake)
# Run alone with `ctest -L fuzz`, skip with `ctest -LE fuzz`. Reported as
# skipped (not failed) when no clang with libFuzzer is installed.
set(SALTED_FUZZ_SECONDS 15 CACHE STRING "Seconds each fuzz target runs in the CTest 'fuzz' test")
find_program(SALTED_BASH bash)
# ENVIRONMENT is itself a ;-list, so xsimd's include directories travel ':'-joined.
string(REPLACE ";" ":" SALTED_FUZZ_XSIMD_DIRS "${SALTED_XSIMD_INCLUDE}")
if(SALTED_BASH)
  add_test(NAME fuzz COMMAND ${SALTED_BASH} ${CMAKE_CURRENT_LIST_DIR}/../fuzz/run.sh ${SALTED_FUZZ_SECONDS})
  set_tests_properties(fuzz PROPERTIES
    SKIP_RETURN_CODE 77
    TIMEOUT 900
    LABELS fuzz
    RUN_SERIAL TRUE
    ENVIRONMENT "SALTED_FUZZ_BUILD=${CMAKE_BINARY_DIR}/fuzz;SALTED_XSIMD_INCLUDE=${SALTED_FUZZ_XSIMD_DIRS}")
else()
  message(STATUS "salted: bash not found, the 'fuzz' test is not registered")
endif()
