# Joins scikit-learn's diabetes data (Debian package python3-sklearn) into one CSV file:
#
#   cmake -DDATA_DIR=/usr/lib/python3/dist-packages/sklearn/datasets/data
#         -DOUTPUT=diabetes.csv -P diabetes_csv.cmake
#
# diabetes_data_raw.csv.gz holds 442 rows of ten space-separated baseline variables (age,
# sex, body mass index, mean blood pressure, six blood serum measurements s1..s6) in their
# original units; diabetes_target.csv.gz holds the matching targets, a measure of disease
# progression one year later (Efron, Hastie, Johnstone and Tibshirani, "Least Angle
# Regression", Annals of Statistics 2004). The result has a header and one row per patient.
cmake_minimum_required(VERSION 3.20)

find_program(GZIP gzip REQUIRED)
foreach(part data_raw target)
  execute_process(COMMAND ${GZIP} -dc ${DATA_DIR}/diabetes_${part}.csv.gz
    OUTPUT_VARIABLE ${part} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "cannot decompress ${DATA_DIR}/diabetes_${part}.csv.gz")
  endif()
  string(STRIP "${${part}}" ${part})
  string(REPLACE "\n" ";" ${part} "${${part}}")
endforeach()

list(LENGTH data_raw rows)
list(LENGTH target targets)
if(NOT rows EQUAL targets)
  message(FATAL_ERROR "diabetes data: ${rows} rows of features but ${targets} targets")
endif()
set(csv "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6,progression\n")
math(EXPR last "${rows} - 1")
foreach(i RANGE ${last})
  list(GET data_raw ${i} features)
  list(GET target ${i} y)
  string(STRIP "${features}" features)
  string(REGEX REPLACE "[ \t]+" "," features "${features}")
  string(STRIP "${y}" y)
  string(APPEND csv "${features},${y}\n")
endforeach()
file(WRITE ${OUTPUT} "${csv}")
message(STATUS "${OUTPUT}: ${rows} rows")
