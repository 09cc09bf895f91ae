# Doxygen input filter for the Markdown pages (FILTER_PATTERNS in Doxyfile.in). The pages
# are written for GitHub, which renders $...$ and $$...$$ as math; Doxygen 1.9 does not.
# This turns them into \f$...\f$ and \f[...\f] (rendered by MathJax from libjs-mathjax),
# and writes inline code holding an apostrophe with double backticks: Doxygen reads
# `|f'(x)|` as a quotation that starts at the backtick and breaks the rest of the line.
# Doxygen 1.9 also shows code in a heading as a literal <tt> (headings lose their backticks
# here) and bold that starts with code as literal ** (written as <b>...</b> here). Links
# from a tutorial to its source files (main.cpp, ../common/figures.hpp) point into
# html/tutorials, the link to the tutorials that docs/CMakeLists.txt makes.
# Fenced code blocks pass through unchanged, except that one holding a /** comment becomes
# an indented code block: in a fenced one Doxygen drops the comment.
{ before = current; current = $0 }
/^[ ]*```/ {
  if (!fence) { fence = 1; opener = $0; nbuf = 0; doc = 0; blank_before = before ~ /^[ ]*$/; next }
  fence = 0
  if (doc) {
    # No blank lines added where there are some: two in a row would end a list.
    if (!blank_before) print ""
    for (k = 1; k <= nbuf; k++) print "    " buf[k]
  } else {
    print opener
    for (k = 1; k <= nbuf; k++) print buf[k]
    print
  }
  next
}
fence { buf[++nbuf] = $0; if (index($0, "/**")) doc = 1; next }
/^[ ]*\$\$[ ]*$/ { display = !display; sub(/\$\$/, display ? "\\f[" : "\\f]"); print; next }
# The tutorial folder of this page ("tutorials/NN_name/"), or "" for the other pages.
FNR == 1 {
  tutdir = ""
  if (match(FILENAME, /tutorials\/[^\/]+\/[^\/]+$/)) {
    tutdir = substr(FILENAME, RSTART)
    sub(/[^\/]+$/, "", tutdir)
  }
}
{
  line = $0
  out = ""
  n = length(line)
  i = 1
  heading = line ~ /^#+ /
  bold = 0
  while (i <= n) {
    c = substr(line, i, 1)
    if (c == "`") {
      j = index(substr(line, i + 1), "`")
      if (j == 0) { out = out substr(line, i); break }
      span = substr(line, i + 1, j - 1)
      if (heading) {
        out = out span
      } else if (index(span, "'") > 0) {
        out = out "``" span "``"
      } else {
        out = out "`" span "`"
      }
      i += j + 1
    } else if (c == "*" && substr(line, i, 3) == "**`" && !bold) {
      out = out "<b>"
      bold = 1
      i += 2
    } else if (c == "*" && substr(line, i, 2) == "**" && bold) {
      out = out "</b>"
      bold = 0
      i += 2
    } else if (c == "]" && substr(line, i + 1, 1) == "(" && tutdir != "") {
      j = index(substr(line, i + 2), ")")
      target = substr(line, i + 2, j - 1)
      if (j > 0 && target !~ /^(https?:|#|\/|figures\/|\.\.\/\.\.\/)/ && target !~ /\.md(#.*)?$/ \
          && target !~ /[ <>]/) {
        dest = tutdir target
        while (sub(/[^\/]+\/\.\.\//, "", dest)) {}
        out = out "](" dest ")"
        i += j + 2
      } else {
        out = out c
        i++
      }
    } else if (c == "$" && !display) {
      if (substr(line, i + 1, 1) == "$") {
        j = index(substr(line, i + 2), "$$")
        if (j > 0) {
          out = out "\\f[" substr(line, i + 2, j - 1) "\\f]"
          i += j + 3
          continue
        }
      }
      j = index(substr(line, i + 1), "$")
      body = substr(line, i + 1, j - 1)
      if (j > 1 && body !~ /^ / && body !~ / $/) {
        out = out "\\f$" body "\\f$"
        i += j + 1
      } else {
        out = out c
        i++
      }
    } else {
      out = out c
      i++
    }
  }
  print out
}
