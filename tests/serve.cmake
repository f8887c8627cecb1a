# The tail server and client over HTTP (tests/serve/test_serve.py): bad
# frames get a 4xx with a message, a good one the logits of `salted tail`
# bit for bit, the client's labels match `salted run --desalt`, SIGTERM
# stops the server. Include from tests/CMakeLists.txt after SALTED_PYTHON
# is set:   include(${CMAKE_CURRENT_SOURCE_DIR}/serve.cmake)
if(SALTED_BUILD_PROGRAMS)
  add_test(NAME serve COMMAND ${SALTED_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/serve/test_serve.py)
  set_tests_properties(serve PROPERTIES LABELS "python;serve" TIMEOUT 60
    ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;SALTED_BIN=${CMAKE_BINARY_DIR}/salted")
endif()
