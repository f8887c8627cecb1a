# End-to-end tests of the `salted` program against PyTorch (tests/e2e/):
# every reference configuration exported with random weights, `salted run`
# vs PyTorch, head -> frame -> tail vs run at every cut (bit exact), unsafe
# cuts refused, CLI error cases. Needs the program (SALTED_BUILD_PROGRAMS)
# and Debian's python3-torch. Include from tests/CMakeLists.txt after
# SALTED_PYTHON is set:   include(${CMAKE_CURRENT_SOURCE_DIR}/e2e.cmake)
if(SALTED_BUILD_PROGRAMS)
  add_test(NAME e2e
    COMMAND ${SALTED_PYTHON} -m unittest discover -s ${CMAKE_CURRENT_LIST_DIR}/e2e -p "test_*.py" -v)
  # The program is ${CMAKE_BINARY_DIR}/salted (tools/salted/CMakeLists.txt);
  # exported models and scratch files go to ${CMAKE_BINARY_DIR}/e2e.
  set_tests_properties(e2e PROPERTIES LABELS "python;e2e" TIMEOUT 900
    ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;SALTED_BIN=${CMAKE_BINARY_DIR}/salted;SALTED_E2E_DIR=${CMAKE_BINARY_DIR}/e2e")
endif()
