# xgrad_precompile(<target>...)
#
# Precompiles <xgrad/xgrad.hpp> for the C++ sources of the given targets, which must link
# xgrad::xgrad. Much of what a file that uses xgrad costs the compiler is parsing xtensor
# and xgrad; with the precompiled header it is done once instead of in every file. The
# first target builds the header, the others reuse it (REUSE_FROM), so all of them must be
# compiled with the same options; call it once per group of targets that are. Files of
# these targets see xgrad.hpp as if each began with #include <xgrad/xgrad.hpp>.
#
# Provided by find_package(xgrad) and, for projects that add xgrad's source tree with
# add_subdirectory, by xgrad's own CMakeLists.txt.
function(xgrad_precompile first)
  target_precompile_headers(${first} PRIVATE "$<$<COMPILE_LANGUAGE:CXX>:<xgrad/xgrad.hpp>>")
  foreach(target IN LISTS ARGN)
    target_precompile_headers(${target} REUSE_FROM ${first})
  endforeach()
endfunction()
