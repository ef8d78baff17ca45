# patchbay_add_test(NAME n SOURCES ... LIBS ... LABELS ... [TIMEOUT s] [OWN_MAIN])
#   One GoogleTest executable; its tests are listed at test time (no build-time run) and
#   carry the given ctest labels (unit, conformance, broker, browser, fault, fuzz, ...).
#   OWN_MAIN: the sources define main() (e.g. to register conformance suites at run time).
function(patchbay_add_test)
  cmake_parse_arguments(T "OWN_MAIN" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS;ENVIRONMENT" ${ARGN})
  if(NOT PATCHBAY_BUILD_TESTS)
    return()
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gmock patchbay_warnings)
  if(NOT T_OWN_MAIN)
    target_link_libraries(${T_NAME} PRIVATE GTest::gtest_main)
  endif()
  gtest_discover_tests(${T_NAME}
    DISCOVERY_MODE PRE_TEST
    DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT ${T_TIMEOUT} ENVIRONMENT "${T_ENVIRONMENT}")
  # Labels are set from a file ctest includes after the discovery script: handed to
  # gtest_discover_tests's PROPERTIES, a list of labels is flattened into the property list and
  # only the first label sticks (CMake 3.25). <name>_TESTS is gtest's default TEST_LIST.
  if(T_LABELS)
    set(labels_file ${CMAKE_CURRENT_BINARY_DIR}/${T_NAME}_labels.cmake)
    file(WRITE ${labels_file}
      "if(${T_NAME}_TESTS)\n  set_tests_properties(\${${T_NAME}_TESTS} PROPERTIES LABELS \"${T_LABELS}\")\nendif()\n")
    set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${labels_file})
  endif()
endfunction()

# patchbay_transport(NAME n SOURCES ... [LIBS ...] [BUILTIN]
#                    [TESTS src... ] [TEST_LIBS ...] [TEST_LABELS ...])
#   Builds a transport from one set of sources twice:
#     patchbay_<n>          a static library (an object library linked into the core when
#                           BUILTIN) for applications that link it in;
#     patchbay_<n>_module   a loadable module, build/<preset>/lib/patchbay/libpatchbay_<n>.so,
#                           for `plugins:` in config. Sources see PATCHBAY_BUILDING_MODULE.
#   and registers its tests with ctest.
function(patchbay_transport)
  cmake_parse_arguments(X "BUILTIN" "NAME;KIND" "SOURCES;LIBS;TESTS;TEST_LIBS;TEST_LABELS" ${ARGN})
  _patchbay_component(${ARGV})
endfunction()

# patchbay_plugin(...) — the same for middleware plugins (plugins/<name>).
function(patchbay_plugin)
  _patchbay_component(${ARGV})
endfunction()

function(_patchbay_component)
  cmake_parse_arguments(X "BUILTIN" "NAME" "SOURCES;LIBS;TESTS;TEST_LIBS;TEST_LABELS" ${ARGN})
  set(lib patchbay_${X_NAME})
  if(X_BUILTIN)
    add_library(${lib} OBJECT ${X_SOURCES})
    target_link_libraries(${lib} PRIVATE patchbay_interface patchbay_warnings ${X_LIBS})
    target_compile_definitions(${lib} PRIVATE PATCHBAY_BUILDING_CORE)
  else()
    add_library(${lib} STATIC ${X_SOURCES})
    target_link_libraries(${lib} PUBLIC patchbay ${X_LIBS} PRIVATE patchbay_warnings)
  endif()
  target_include_directories(${lib} PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>)
  add_library(patchbay::${X_NAME} ALIAS ${lib})

  add_library(${lib}_module MODULE ${X_SOURCES})
  target_link_libraries(${lib}_module PRIVATE patchbay ${X_LIBS} patchbay_warnings)
  target_include_directories(${lib}_module PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/include)
  target_compile_definitions(${lib}_module PRIVATE PATCHBAY_BUILDING_MODULE)
  set_target_properties(${lib}_module PROPERTIES
    OUTPUT_NAME patchbay_${X_NAME}
    LIBRARY_OUTPUT_DIRECTORY ${PATCHBAY_MODULE_DIR})

  foreach(src IN LISTS X_TESTS)
    get_filename_component(stem ${src} NAME_WE)
    patchbay_add_test(NAME ${X_NAME}_${stem} SOURCES ${src}
      LIBS ${X_TEST_LIBS} LABELS ${X_TEST_LABELS})
  endforeach()
endfunction()

# patchbay_add_fuzzer(NAME n SOURCES ... [LIBS ...] [MAX_LEN bytes] [DICT "token" ...]
#                     [SEEDS name content name content ...])
#   A libFuzzer executable (clang, `fuzz` preset only; nothing otherwise), part of `fuzz_all`,
#   run by ctest under the `fuzz` label for PATCHBAY_FUZZ_SECONDS. Its corpus lives in the build
#   tree (corpus/<n>, seeded with SEEDS), so later runs start where earlier ones stopped; DICT
#   entries are written one per line in libFuzzer's dictionary syntax ("GET ", "\\x0d\\x0a").
function(patchbay_add_fuzzer)
  cmake_parse_arguments(F "" "NAME;MAX_LEN" "SOURCES;LIBS;DICT;SEEDS" ${ARGN})
  if(NOT (CMAKE_CXX_COMPILER_ID STREQUAL "Clang" AND PATCHBAY_FUZZ))
    return()
  endif()
  if(NOT F_MAX_LEN)
    set(F_MAX_LEN 4096)
  endif()
  add_executable(${F_NAME} ${F_SOURCES})
  target_link_libraries(${F_NAME} PRIVATE ${F_LIBS} patchbay_warnings)
  target_compile_options(${F_NAME} PRIVATE -fsanitize=fuzzer)
  target_link_options(${F_NAME} PRIVATE -fsanitize=fuzzer)
  add_dependencies(fuzz_all ${F_NAME})
  set(corpus ${CMAKE_CURRENT_BINARY_DIR}/corpus/${F_NAME})
  file(MAKE_DIRECTORY ${corpus})
  while(F_SEEDS)
    list(POP_FRONT F_SEEDS seed_name seed_content)
    file(WRITE ${corpus}/${seed_name} "${seed_content}")
  endwhile()
  set(args -max_total_time=${PATCHBAY_FUZZ_SECONDS} -max_len=${F_MAX_LEN} -timeout=30)
  if(F_DICT)
    set(dict ${CMAKE_CURRENT_BINARY_DIR}/${F_NAME}.dict)
    list(JOIN F_DICT "\"\n\"" dict_body)
    file(WRITE ${dict} "\"${dict_body}\"\n")
    list(APPEND args -dict=${dict})
  endif()
  add_test(NAME ${F_NAME} COMMAND ${F_NAME} ${args} ${corpus})
  math(EXPR timeout "${PATCHBAY_FUZZ_SECONDS} + 120")
  set_tests_properties(${F_NAME} PROPERTIES LABELS fuzz TIMEOUT ${timeout})
endfunction()
