# Doxygen input filter for the Markdown pages (FILTER_PATTERNS in Doxyfile.in). The pages
# are written for GitHub, which renders $...$ and $$...$$ as math; Doxygen 1.9 does not.
# This turns them into \f$...\f$ and \f[...\f] (rendered by MathJax from libjs-mathjax),
# and writes inline code holding an apostrophe with double backticks: Doxygen reads
# `|f'(x)|` as a quotation that starts at the backtick and breaks the rest of the line.
# Fenced code blocks pass through unchanged.
/^[ ]*```/ { fence = !fence; print; next }
fence { print; next }
/^[ ]*\$\$[ ]*$/ { display = !display; sub(/\$\$/, display ? "\\f[" : "\\f]"); print; next }
{
  line = $0
  out = ""
  n = length(line)
  i = 1
  while (i <= n) {
    c = substr(line, i, 1)
    if (c == "`") {
      j = index(substr(line, i + 1), "`")
      if (j == 0) { out = out substr(line, i); break }
      span = substr(line, i + 1, j - 1)
      if (index(span, "'") > 0) {
        out = out "``" span "``"
      } else {
        out = out "`" span "`"
      }
      i += j + 1
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
