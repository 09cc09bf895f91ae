# cmake -P script behind the consumer_package test: install the build tree into a scratch
# prefix, build tests/consumer against it with find_package(xgrad), run the result.
foreach(var XGRAD_BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR CXX_COMPILER BUILD_TYPE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_consumer.cmake needs -D${var}=...")
  endif()
endforeach()

set(prefix ${WORK_DIR}/prefix)
set(build ${WORK_DIR}/build)
file(REMOVE_RECURSE ${WORK_DIR})

function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGV}")
  endif()
endfunction()

run(${CMAKE_COMMAND} --install ${XGRAD_BUILD_DIR} --prefix ${prefix} --config ${BUILD_TYPE})
# Only the scratch prefix may provide xgrad, so a broken install cannot be masked.
run(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${build}
  -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
  -DCMAKE_BUILD_TYPE=${BUILD_TYPE} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
run(${CMAKE_COMMAND} --build ${build} --config ${BUILD_TYPE})
run(${build}/consumer)
