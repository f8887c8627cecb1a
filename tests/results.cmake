# Tests of the results scripts (tools/results/: make_results.py,
# leakage_probe.py, frames.py) and the acceptance check of the shipped
# models (C++ accuracy == PyTorch accuracy in models/training_summary.json
# within 0.1 point; skipped while models/ has no .salted file). Needs the
# program (SALTED_BUILD_PROGRAMS), Debian's python3-torch and the
# dataset-fashion-mnist package. Include from tests/CMakeLists.txt after
# SALTED_PYTHON is set:   include(${CMAKE_CURRENT_SOURCE_DIR}/results.cmake)
if(SALTED_BUILD_PROGRAMS)
  add_test(NAME results
    COMMAND ${SALTED_PYTHON} -m unittest discover -s ${CMAKE_CURRENT_LIST_DIR}/results -p "test_*.py" -v)
  # Tiny exported models and scratch files go to ${CMAKE_BINARY_DIR}/results.
  set_tests_properties(results PROPERTIES LABELS "python;results" TIMEOUT 300
    ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;SALTED_BIN=${CMAKE_BINARY_DIR}/salted;SALTED_RESULTS_DIR=${CMAKE_BINARY_DIR}/results")
endif()
