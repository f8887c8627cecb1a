# Python tests of the ONNX importer and the reference architectures
# (tools/weights_import), run with Debian's python3-torch/python3-onnx.
# Included from tests/CMakeLists.txt after SALTED_PYTHON is set:
#   include(${CMAKE_CURRENT_SOURCE_DIR}/importer.cmake)
add_test(NAME importer
  COMMAND ${SALTED_PYTHON} -m unittest discover -s ${CMAKE_CURRENT_LIST_DIR}/importer -p "test_*.py" -v)
# No __pycache__ in the source tree; about 20 s on two cores.
set_tests_properties(importer PROPERTIES LABELS "python" TIMEOUT 600 ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
