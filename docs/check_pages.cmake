# Checks the HTML of the Markdown pages (docs/*.md, the tutorials' READMEs) for what a
# reader would see broken, without a browser: Doxygen writes such pages without a warning.
#
#   cmake -DHTML=build/docs/html -P check_pages.cmake [-DPAGES="md_a.html;md_b.html"]
#
# On each page (by default index.html and every md_*.html in HTML) it fails on
#   - a script, style sheet, image or object loaded from the network (the docs are read
#     offline; MathJax comes from libjs-mathjax),
#   - an image, object, script or link whose file is not in HTML (a figure missing from
#     IMAGE_PATH, a link to a source file that is not there),
#   - in the prose, outside code and outside the formulas MathJax typesets: a '$', a
#     '\name' or '\f' (math the filter did not turn into a formula), a backtick or '**'
#     (Markdown Doxygen did not render), or escaped markup such as "<tt>" shown as text.
# It prints every problem and their number per page.

cmake_minimum_required(VERSION 3.20)

if(NOT HTML OR NOT IS_DIRECTORY "${HTML}")
  message(FATAL_ERROR "usage: cmake -DHTML=<docs/html> -P check_pages.cmake")
endif()
get_filename_component(HTML "${HTML}" ABSOLUTE)
if(NOT PAGES)
  file(GLOB PAGES RELATIVE "${HTML}" "${HTML}/md_*.html")
  list(APPEND PAGES index.html)
endif()

# One-character markers: CMake regexes have no lazy '*?', but "A[^B]*B" is lazy.
foreach(k RANGE 1 8)
  string(ASCII ${k} m${k})
endforeach()
string(ASCII 31 semi)

# Prints "page: what: snippet" and counts it among the problems of the current page.
# Blanks every span from `open` to `close` in the variable named `var`; the delimiters are
# first replaced by the one-character markers ma and mb, so that a regex can exclude mb.
function(blank_spans var open close ma mb)
  set(t "${${var}}")
  string(REPLACE "${open}" "${ma}" t "${t}")
  string(REPLACE "${close}" "${mb}" t "${t}")
  string(REGEX REPLACE "${ma}[^${mb}]*${mb}" " " t "${t}")
  set(${var} "${t}" PARENT_SCOPE)
endfunction()

function(problem what snippet)
  string(REPLACE "${semi}" ";" snippet "${snippet}")
  string(REGEX REPLACE "[\n ]+" " " snippet "${snippet}")
  message("${page}: ${what}: ${snippet}")
  math(EXPR count "${count} + 1")
  set(count ${count} PARENT_SCOPE)
endfunction()

# Calls problem() for each match of `regex` in `text`, shown with the word around it.
function(problems_in text regex what)
  string(REGEX MATCHALL "[^ \n]*${regex}[^ \n]*" hits "${text}")
  foreach(hit IN LISTS hits)
    problem("${what}" "${hit}")
  endforeach()
  set(count ${count} PARENT_SCOPE)
endfunction()

set(total 0)
foreach(page IN LISTS PAGES)
  set(count 0)
  if(NOT EXISTS "${HTML}/${page}")
    problem("page missing" "${HTML}/${page}")
    math(EXPR total "${total} + ${count}")
    continue()
  endif()
  file(READ "${HTML}/${page}" html)
  # ';' would split CMake lists: keep it as a marker of its own.
  string(REPLACE ";" "${semi}" html "${html}")

  # Tags that load or link something: no network, and the file is there.
  string(REGEX MATCHALL "<(script|link|img|object|iframe|embed|source|a)[ \n][^>]*>" tags "${html}")
  foreach(tag IN LISTS tags)
    if(tag MATCHES "^<(script|link|img|object|iframe|embed|source)"
       AND tag MATCHES " (src|href|data)=\"(https?:)?//")
      problem("loaded from the network" "${tag}")
    endif()
    if(tag MATCHES " (src|href|data)=\"([^\"#?]+)")
      set(target "${CMAKE_MATCH_2}")
      if(NOT target MATCHES "^([a-z]+:|//)" AND NOT EXISTS "${HTML}/${target}")
        problem("no such file" "${tag}")
      endif()
    endif()
  endforeach()

  # The prose: the page's contents without code, formulas, scripts and tags.
  string(FIND "${html}" "<div class=\"contents\">" at)
  if(at EQUAL -1)
    problem("no contents" "${page}")
    math(EXPR total "${total} + ${count}")
    continue()
  endif()
  string(SUBSTRING "${html}" ${at} -1 text)
  blank_spans(text "<div class=\"fragment\">" "</div><!-- fragment -->" "${m1}" "${m2}")
  blank_spans(text "<pre" "</pre>" "${m1}" "${m2}")
  blank_spans(text "<code>" "</code>" "${m3}" "${m4}")
  blank_spans(text "<script" "</script>" "${m3}" "${m4}")
  blank_spans(text "\\(" "\\)" "${m5}" "${m6}")
  blank_spans(text "\\[" "\\]" "${m7}" "${m8}")
  string(REGEX REPLACE "<[^>]*>" " " text "${text}")

  problems_in("${text}" "[$]" "'$' outside a formula")
  problems_in("${text}" "\\\\([a-zA-Z]+|f.)" "TeX outside a formula")
  problems_in("${text}" "[`]" "backtick left")
  problems_in("${text}" "[*][*]" "'**' left")
  problems_in("${text}" "&lt[${semi}]/?(tt|code|b|i|em|strong|sub|sup|br|a|p)( |&gt)"
    "markup shown as text")
  problems_in("${text}" "[${m1}-${m8}]" "unclosed code or formula")

  if(count GREATER 0)
    message("${page}: ${count} problems")
  endif()
  math(EXPR total "${total} + ${count}")
endforeach()

list(LENGTH PAGES npages)
if(total GREATER 0)
  message(FATAL_ERROR "${total} problems on the ${npages} pages")
endif()
message("${npages} pages, no problems")
