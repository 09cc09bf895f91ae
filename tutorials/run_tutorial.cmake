# Runs a tutorial as a test: it passes when the program exits 0 (its own checks held) and
# every expected regular expression matches its output.
#
#   cmake -DPROGRAM=path -DARGS="--every 1000" [-DLAUNCHER="mpirun -np 2"] -DWORKING_DIRECTORY=dir
#         -DEXPECT_COUNT=2 -DEXPECT_0=regex -DEXPECT_1=regex -P run_tutorial.cmake
cmake_minimum_required(VERSION 3.20)

separate_arguments(args UNIX_COMMAND "${ARGS}")
# LAUNCHER: a command the program runs under, such as "mpirun -np 2" (tutorial 9).
separate_arguments(launcher UNIX_COMMAND "${LAUNCHER}")
file(MAKE_DIRECTORY "${WORKING_DIRECTORY}")
execute_process(COMMAND ${launcher} "${PROGRAM}" ${args}
  WORKING_DIRECTORY "${WORKING_DIRECTORY}"
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE out
  ERROR_VARIABLE out)
message("${out}")
if(out MATCHES "SKIPPED: ")
  return()  # the test's SKIP_REGULAR_EXPRESSION reports it as skipped
endif()
set(failed FALSE)
if(NOT rc EQUAL 0)
  message(SEND_ERROR "${PROGRAM} exited with ${rc}")
  set(failed TRUE)
endif()
if(NOT EXPECT_COUNT)
  set(EXPECT_COUNT 0)
endif()
set(i 0)
while(i LESS EXPECT_COUNT)
  if(NOT out MATCHES "${EXPECT_${i}}")
    message(SEND_ERROR "expected output not found: ${EXPECT_${i}}")
    set(failed TRUE)
  endif()
  math(EXPR i "${i} + 1")
endwhile()
if(failed)
  message(FATAL_ERROR "tutorial failed")
endif()
