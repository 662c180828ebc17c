# Compiler settings shared by every target: warnings, ccache, sanitizers, fuzzing.

find_program(LF_CCACHE ccache)
if(LF_CCACHE)
  set(CMAKE_C_COMPILER_LAUNCHER ${LF_CCACHE})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${LF_CCACHE})
endif()

add_compile_options(-Wall -Wextra -Wno-unused-parameter -Wnon-virtual-dtor)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # g++ 12 reports false positives from std::string / std::variant inlining at -O2.
  add_compile_options(-Wno-maybe-uninitialized -Wno-restrict -Wno-stringop-overflow)
endif()

if(LF_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

if(LF_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "LF_FUZZ needs clang: configure with -DCMAKE_CXX_COMPILER=clang++-14")
  endif()
  # Instrument all project code; only the fuzz executables link the libFuzzer main.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
