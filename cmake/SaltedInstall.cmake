# Install rules and the CMake package, so that after
#   cmake --install build --prefix P
# a consumer can write find_package(salted) with CMAKE_PREFIX_PATH=P.
#
# salted is header-only, so nothing here depends on the architecture: the
# package lives under share/ and its version file says ARCH_INDEPENDENT.
include(CMakePackageConfigHelpers)

set(SALTED_INSTALL_CMAKEDIR ${CMAKE_INSTALL_DATADIR}/cmake/salted
    CACHE STRING "Where the salted CMake package files are installed")

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/salted
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.hpp")
install(TARGETS salted EXPORT saltedTargets)
install(EXPORT saltedTargets
        NAMESPACE salted::
        DESTINATION ${SALTED_INSTALL_CMAKEDIR})

configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/saltedConfig.cmake.in
  ${PROJECT_BINARY_DIR}/saltedConfig.cmake
  INSTALL_DESTINATION ${SALTED_INSTALL_CMAKEDIR})
# 0.x: a new minor version may change the API, so only the same minor matches.
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/saltedConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion
  ARCH_INDEPENDENT)
install(FILES
  ${PROJECT_BINARY_DIR}/saltedConfig.cmake
  ${PROJECT_BINARY_DIR}/saltedConfigVersion.cmake
  DESTINATION ${SALTED_INSTALL_CMAKEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE ${PROJECT_SOURCE_DIR}/README.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
