# Compiler launcher, output folders, warnings and sanitizers for every patchbay target.

find_program(PATCHBAY_CCACHE ccache)
if(PATCHBAY_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${PATCHBAY_CCACHE})
endif()

# Executables land in build/<preset>/bin, libraries in build/<preset>/lib, plugin modules in
# build/<preset>/lib/patchbay.
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
set(CMAKE_LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib)
set(CMAKE_ARCHIVE_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib)
set(PATCHBAY_MODULE_DIR ${CMAKE_BINARY_DIR}/lib/patchbay)
# Executables find libpatchbay.so next to them without LD_LIBRARY_PATH.
set(CMAKE_BUILD_RPATH_USE_ORIGIN ON)
set(CMAKE_INSTALL_RPATH "$ORIGIN/../lib")

set(CMAKE_POSITION_INDEPENDENT_CODE ON)

add_library(patchbay_warnings INTERFACE)
# GCC 12 warns about members omitted from designated initializers ({.group = "g"}), which
# is how the API is meant to be used.
target_compile_options(patchbay_warnings INTERFACE -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers)
if(PATCHBAY_WERROR)
  target_compile_options(patchbay_warnings INTERFACE -Werror)
endif()

if(PATCHBAY_SANITIZE_ADDRESS AND PATCHBAY_SANITIZE_THREAD)
  message(FATAL_ERROR "PATCHBAY_SANITIZE_ADDRESS and PATCHBAY_SANITIZE_THREAD exclude each other")
endif()
if(PATCHBAY_SANITIZE_ADDRESS)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    # clang 14 cannot emit UBSan's function-type check for split coroutines ("Cannot represent
    # a difference across sections"); every other UBSan check stays on.
    add_compile_options(-fno-sanitize=function)
  endif()
endif()
if(PATCHBAY_SANITIZE_THREAD)
  # GCC warns that TSan cannot see atomic_thread_fence, which Asio uses; the warning is noise.
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer -Wno-tsan)
  add_link_options(-fsanitize=thread)
endif()
if(PATCHBAY_FUZZ)
  # libFuzzer targets (clang only): every library is instrumented for coverage; the fuzz
  # executables add -fsanitize=fuzzer, which brings libFuzzer's main().
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "PATCHBAY_FUZZ needs clang++ (use the `fuzz` preset)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
