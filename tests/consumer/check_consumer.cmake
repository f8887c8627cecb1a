# Builds and runs tests/consumer/ against salted, as a fresh outside project:
#   cmake -DMODE=subdirectory|package -DSALTED_SOURCE_DIR=<src>
#         -DWORK_DIR=<scratch dir> -DCXX=<compiler> -DGENERATOR=<generator>
#         -P check_consumer.cmake
# MODE=package first configures salted on its own (no tests) and installs it
# to WORK_DIR/prefix, which is what a user does before find_package(salted).
foreach(var MODE SALTED_SOURCE_DIR WORK_DIR CXX GENERATOR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_consumer: -D${var}=... is required")
  endif()
endforeach()

function(run what)
  message(STATUS "check_consumer: ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "check_consumer: ${what} failed (${rc}): ${ARGN}")
  endif()
endfunction()

set(consumer_src ${CMAKE_CURRENT_LIST_DIR})
set(common -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=Release)
file(REMOVE_RECURSE ${WORK_DIR})

if(MODE STREQUAL "subdirectory")
  set(how -DSALTED_CONSUME=subdirectory -DSALTED_SOURCE_DIR=${SALTED_SOURCE_DIR})
elseif(MODE STREQUAL "package")
  set(prefix ${WORK_DIR}/prefix)
  run("configure salted" ${CMAKE_COMMAND} -S ${SALTED_SOURCE_DIR} -B ${WORK_DIR}/salted-build ${common}
      -DSALTED_BUILD_TESTS=OFF -DSALTED_BUILD_BENCH=OFF -DSALTED_BUILD_PROGRAMS=OFF)
  run("install salted to ${prefix}" ${CMAKE_COMMAND} --install ${WORK_DIR}/salted-build --prefix ${prefix})
  set(how -DSALTED_CONSUME=package -DCMAKE_PREFIX_PATH=${prefix} -DSALTED_EXPECT_PREFIX=${prefix})
else()
  message(FATAL_ERROR "check_consumer: MODE: expected subdirectory or package, found '${MODE}'")
endif()

run("configure consumer (${MODE})" ${CMAKE_COMMAND} -S ${consumer_src} -B ${WORK_DIR}/consumer-build ${common} ${how})
run("build consumer (${MODE})" ${CMAKE_COMMAND} --build ${WORK_DIR}/consumer-build --parallel 2)
run("run relu_plain" ${WORK_DIR}/consumer-build/relu_plain)
run("run relu_openmp" ${WORK_DIR}/consumer-build/relu_openmp)
