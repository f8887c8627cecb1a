# Every public header compiles on its own, with -fno-exceptions and -Werror,
# in the two configurations salted promises to support:
#   salted_header_check         no OpenMP, no -march: a plain consumer build
#   salted_header_check_openmp  -fopenmp and salted's own -march=native
# and, on x86-64, with -march=x86-64-v3 (AVX2) and -v4 (AVX-512).
# One generated translation unit per header. The header list is a configure-
# time glob (CONFIGURE_DEPENDS), so a new header is checked without editing
# anything. The targets are not part of `all`: the CTest test
# `headers_compile` builds them, so a broken header fails one test instead of
# the whole build.
file(GLOB_RECURSE SALTED_PUBLIC_HEADERS CONFIGURE_DEPENDS
     RELATIVE ${PROJECT_SOURCE_DIR}/include
     ${PROJECT_SOURCE_DIR}/include/salted/*.hpp)
list(SORT SALTED_PUBLIC_HEADERS)

set(_tus)
foreach(SALTED_HEADER ${SALTED_PUBLIC_HEADERS})
  string(MAKE_C_IDENTIFIER ${SALTED_HEADER} _id)
  set(_tu ${CMAKE_CURRENT_BINARY_DIR}/header_check/${_id}.cpp)
  # configure_file rewrites only when the content changes, so a re-configure
  # does not recompile every check.
  configure_file(${PROJECT_SOURCE_DIR}/cmake/header_check.cpp.in ${_tu} @ONLY)
  list(APPEND _tus ${_tu})
endforeach()

set(_strict -fno-exceptions -Wall -Wextra -Werror
    # GCC 12 warns inside its own AVX-512 intrinsics; see salted_dev_flags.
    $<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>)

add_library(salted_header_check OBJECT EXCLUDE_FROM_ALL ${_tus})
target_link_libraries(salted_header_check PRIVATE salted::salted)
target_compile_options(salted_header_check PRIVATE ${_strict})
set(_check_targets salted_header_check)

if(OpenMP_CXX_FOUND)
  add_library(salted_header_check_openmp OBJECT EXCLUDE_FROM_ALL ${_tus})
  target_link_libraries(salted_header_check_openmp PRIVATE salted::openmp)
  target_compile_options(salted_header_check_openmp PRIVATE ${_strict})
  if(SALTED_NATIVE)
    target_compile_options(salted_header_check_openmp PRIVATE -march=native)
  endif()
  list(APPEND _check_targets salted_header_check_openmp)
else()
  message(STATUS "salted: OpenMP not found; headers are checked without -fopenmp only")
endif()

# The x86 SIMD paths the host may not take: the CI host's -march=native is
# AVX-512 on some machines of this kind and AVX2 on others, and each path
# has code of its own (winograd_tiles.hpp, simd.hpp). Both are compiled here
# whatever the host; they run only where the CPU has them.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64" AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  foreach(_level v3 v4)
    add_library(salted_header_check_x86_${_level} OBJECT EXCLUDE_FROM_ALL ${_tus})
    target_link_libraries(salted_header_check_x86_${_level} PRIVATE salted::salted)
    target_compile_options(salted_header_check_x86_${_level} PRIVATE ${_strict} -march=x86-64-${_level})
    list(APPEND _check_targets salted_header_check_x86_${_level})
  endforeach()
endif()

list(LENGTH SALTED_PUBLIC_HEADERS _count)
message(STATUS "salted: ${_count} public headers in the compile check")
add_test(NAME headers_compile
  COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --config $<CONFIG>
          --target ${_check_targets} --parallel 2)
