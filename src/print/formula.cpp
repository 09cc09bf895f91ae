// Formulas: to_string in the note's notation and to_latex. Both walk one topological order
// (never recursion) and build, per node, a Term: a numeric factor, scalar denominators and
// a body. Factors travel up through negation, products, divisions by scalars, matrix
// products and shape identities, so a gradient built as X^T @ sum_to(-(y - X @ beta), ...)
// prints as the note derives it: -X^T @ (y - X @ beta). Only the printing is simplified;
// the graph is left as it is.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>
#include <vector>

#include "../topo.hpp"
#include "xgrad/print.hpp"

namespace xgrad {
namespace {

/// A node as printed: coef * body / (den[0] * den[1] * ...). An empty body is the number
/// coef alone; den holds scalar factors already wrapped to stand right of a division.
struct Term {
  double coef = 1;
  std::vector<std::string> den;
  std::string body;
  int prec = 100;       // binding strength of body (see Op::precedence)
  bool spaced = false;  // body is a matrix product: factors join it with " * "
};

constexpr int kSum = 10, kProd = 20, kNeg = 15, kPow = 30;

/// The shortest text that reads back as v, in fixed notation (0.0005) unless that is long.
std::string shortest(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  if (r.ec == std::errc() && r.ptr - buf <= 10) return std::string(buf, r.ptr);
  r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

/// A coefficient as written by hand: 2, 0.5, or 1/3 rather than 0.3333333333333333.
std::string coef_text(double v, bool latex) {
  std::string s = shortest(v);
  if (s.size() <= 7 || !std::isfinite(v)) return s;
  for (int d = 2; d <= 1000; ++d) {
    double num = std::round(v * d);
    if (num != 0 && std::abs(num / d - v) <= 1e-12 * std::abs(v) && std::abs(num) < 1e6) {
      return latex ? "\\frac{" + shortest(num) + "}{" + std::to_string(d) + "}"
                   : shortest(num) + "/" + std::to_string(d);
    }
  }
  return s;
}

bool is_word(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(),
                                   [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

/// How one notation writes what the printer assembles.
struct Notation {
  bool latex = false;
  std::string paren(const std::string& s) const { return "(" + s + ")"; }
  std::string times(bool spaced) const { return latex ? " " : spaced ? " * " : "*"; }
  std::string product(const std::string& a, const std::string& b) const {
    return latex ? a + " \\cdot " + b : a + "*" + b;
  }
  std::string matmul(const std::string& a, const std::string& b) const {
    return latex ? a + " " + b : a + " @ " + b;
  }
  std::string transposed() const { return latex ? "^\\top" : "^T"; }
};

/// A name in LaTeX: Greek letters as symbols, trailing digits as a subscript, words upright.
std::string latex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '_' || c == '#' || c == '%' || c == '&' || c == '$' || c == '{' || c == '}') {
      out += '\\';
    } else if (c == '\\') {
      out += "\\backslash ";
      continue;
    }
    out += c;
  }
  return out;
}

std::string latex_name(const std::string& name) {
  static const char* greek[] = {"alpha", "beta",   "gamma",  "delta", "epsilon", "eta",   "theta",
                                "kappa", "lambda", "mu",     "nu",    "xi",      "pi",    "rho",
                                "sigma", "tau",    "phi",    "chi",   "psi",     "omega", "Gamma",
                                "Delta", "Theta",  "Lambda", "Sigma", "Phi",     "Psi",   "Omega"};
  std::size_t cut = name.size();
  while (cut > 0 && std::isdigit(static_cast<unsigned char>(name[cut - 1]))) --cut;
  std::string base = name.substr(0, cut), digits = name.substr(cut);
  if (base.empty()) return name;
  std::string b;
  if (std::find(std::begin(greek), std::end(greek), base) != std::end(greek)) {
    b = "\\" + base;
  } else if (base.size() == 1) {
    b = base;
  } else {
    b = "\\mathrm{" + latex_escape(base) + "}";
  }
  return digits.empty() ? b : b + "_{" + digits + "}";
}

/// An op's own printed form turned into LaTeX: calls become \operatorname (or \exp, \log...),
/// ^T becomes ^\top, exponents get braces and special characters are escaped. Arguments
/// are passed as placeholders \x01<i>, substituted after escaping.
std::string latex_of_format(std::string tpl, const std::vector<std::string>& args) {
  static const char* known[] = {"exp", "log", "sin", "cos", "tanh", "max", "min"};
  std::string out;
  for (std::size_t i = 0; i < tpl.size();) {
    char c = tpl[i];
    if (c == '\x01') {
      out += args[static_cast<unsigned char>(tpl[i + 1]) - 1];
      i += 2;
    } else if (std::isalpha(static_cast<unsigned char>(c))) {
      std::size_t j = i;
      while (j < tpl.size() && (std::isalnum(static_cast<unsigned char>(tpl[j])) || tpl[j] == '_'))
        ++j;
      std::string w = tpl.substr(i, j - i);
      bool call = j < tpl.size() && tpl[j] == '(';
      if (w.size() == 1) {
        out += w;
      } else if (call && std::find(std::begin(known), std::end(known), w) != std::end(known)) {
        out += "\\" + w;
      } else if (call) {
        out += "\\operatorname{" + latex_escape(w) + "}";
      } else {
        out += "\\mathrm{" + latex_escape(w) + "}";
      }
      i = j;
    } else if (c == '^') {
      std::size_t j = i + 1;
      if (j + 1 < tpl.size() && tpl[j] == '\x01') {
        out += "^{" + args[static_cast<unsigned char>(tpl[j + 1]) - 1] + "}";
        i = j + 2;
        continue;
      }
      if (j < tpl.size() && tpl[j] == 'T') {
        out += "^\\top";
        i = j + 1;
        continue;
      }
      while (j < tpl.size() && (std::isdigit(static_cast<unsigned char>(tpl[j])) || tpl[j] == '.' ||
                                tpl[j] == '-' || tpl[j] == 'e'))
        ++j;
      out += "^{" + tpl.substr(i + 1, j - i - 1) + "}";
      i = j;
    } else {
      out += latex_escape(std::string(1, c));
      ++i;
    }
  }
  return out;
}

/// LaTeX forms of the ops whose plain form is a call; others go through latex_of_format.
bool latex_special(std::string_view op, const std::vector<std::string>& raw,
                   const std::vector<int>& prec, std::string& out) {
  if (raw.size() == 1) {
    const std::string& a = raw[0];
    if (op == "sqrt") return out = "\\sqrt{" + a + "}", true;
    if (op == "norm") return out = "\\lVert " + a + " \\rVert", true;
    if (op == "abs") return out = "\\lvert " + a + " \\rvert", true;
    if (op == "square") return out = (prec[0] < kPow ? "(" + a + ")" : a) + "^{2}", true;
  }
  if (raw.size() == 2 && (op == "div" || op == "safe_div")) {
    return out = "\\frac{" + raw[0] + "}{" + raw[1] + "}", true;
  }
  return false;
}

template <class T>
class Printer {
 public:
  Printer(const Graph<T>& g, Notation nt) : g_(g), nt_(nt), terms_(g.size()) {}

  std::string print(NodeId root) {
    detail::big_vector<NodeId> order = detail::topo_order(g_, std::span<const NodeId>(&root, 1));
    for (NodeId id : order) {
      const Node<T>& n = g_.node(id);
      terms_[id] =
          n.kind == NodeKind::op && (n.name.empty() || id == root) ? op_term(n) : leaf_term(id);
    }
    return render(terms_[root]).first;
  }

 private:
  Term leaf_term(NodeId id) const {
    const Node<T>& n = g_.node(id);
    Term t;
    if (!n.name.empty()) {
      t.body = nt_.latex ? latex_name(n.name) : n.name;
    } else if (n.kind == NodeKind::constant && n.value.size() == 1) {
      t.coef = static_cast<double>(n.value.data()[0]);
    } else if (n.kind == NodeKind::constant) {
      t.body = (nt_.latex ? "\\mathrm{const}" : "const") + shape_str(n.shape);
    } else {
      t.body = (nt_.latex ? "\\#" : "#") + std::to_string(id);
    }
    return t;
  }

  /// The text of a term and its binding strength. With a matrix product and one simple
  /// denominator the factor goes first ("-2/n * X^T @ r"), otherwise denominators follow
  /// the body ("x/(b*c)").
  std::pair<std::string, int> render(const Term& t) const {
    const bool latex = nt_.latex;
    const bool negative = std::signbit(t.coef);
    const double mag = std::abs(t.coef);
    std::string dens;
    for (std::size_t i = 0; i < t.den.size(); ++i)
      dens += (i ? (latex ? " " : "*") : "") + t.den[i];
    if (t.den.size() > 1 && !latex) dens = nt_.paren(dens);
    std::string core;
    int prec = t.prec;
    if (t.body.empty()) {
      if (t.den.empty()) {
        core = coef_text(mag, latex);
        prec = !latex && core.find('/') != std::string::npos ? kProd : 100;
      } else {
        core = latex ? "\\frac{" + coef_text(mag, true) + "}{" + dens + "}"
                     : coef_text(mag, false) + "/" + dens;
        prec = latex ? 100 : kProd;
      }
      if (negative) return {"-" + core, t.den.empty() && prec == 100 ? 25 : kNeg};
      return {core, prec};
    }
    const std::string wrapped = t.prec < kProd ? nt_.paren(t.body) : t.body;
    const std::string sep = nt_.times(t.spaced);
    const std::string factor = mag == 1 ? "" : coef_text(mag, latex);
    if (t.den.empty()) {
      core = factor.empty() ? t.body : factor + sep + wrapped;
      if (!factor.empty()) prec = kProd;
    } else if (t.spaced && t.den.size() == 1 && is_word(t.den[0])) {
      core = (latex ? "\\frac{" + coef_text(mag, true) + "}{" + dens + "}"
                    : coef_text(mag, false) + "/" + dens) +
             sep + wrapped;
      prec = kProd;
    } else if (latex) {
      core = "\\frac{" + (factor.empty() ? "" : factor + " ") + t.body + "}{" + dens + "}";
      prec = 100;
    } else {
      core = (factor.empty() ? "" : factor + sep) + wrapped + (t.spaced ? " / " : "/") + dens;
      prec = kProd;
    }
    if (!negative) return {core, prec};
    return {"-" + (prec < kProd ? nt_.paren(core) : core), kNeg};
  }

  /// A term's text for operand i of an op of precedence p (parenthesised as needed).
  std::string operand(const Term& t, int p, bool assoc, std::size_t i, int* prec_out = nullptr) {
    auto [s, q] = render(t);
    if (prec_out) *prec_out = q;
    bool paren =
        p < 100 && (q < p || (i > 0 && q == p && !assoc) || (i == 0 && q == p && p >= kPow));
    return paren ? nt_.paren(s) : s;
  }

  Term body_term(std::string body, int prec, bool spaced = false) const {
    Term t;
    t.body = std::move(body);
    t.prec = prec;
    t.spaced = spaced;
    return t;
  }

  /// Wraps a term for the right of a division.
  std::string as_den(const Term& t) {
    auto [s, q] = render(t);
    return q <= kProd && !nt_.latex ? nt_.paren(s) : s;
  }

  Term op_term(const Node<T>& n) {
    const std::string_view op = n.op->name();
    const std::size_t k = n.inputs.size();
    auto in = [&](std::size_t i) -> const Term& { return terms_[n.inputs[i]]; };
    auto scalar = [&](std::size_t i) { return g_.node(n.inputs[i]).shape.empty(); };
    // Shape identities: copies of operand 0 to a shape equal to its own (an open extent
    // reads as the same n everywhere).
    if (n.op->traits().copy_when_same_size && k >= 1 && g_.node(n.inputs[0]).shape == n.shape) {
      return in(0);
    }
    if (op == "neg" && k == 1) {
      Term t = in(0);
      t.coef = -t.coef;
      return t;
    }
    if (op == "mul" && k == 2) {
      const Term &a = in(0), &b = in(1);
      Term t;
      t.coef = a.coef * b.coef;
      t.den = a.den;
      t.den.insert(t.den.end(), b.den.begin(), b.den.end());
      // A matrix product inside an elementwise one keeps its parentheses: t*(F @ w).
      auto wrap = [&](const Term& x) {
        return x.prec < kProd || x.spaced ? nt_.paren(x.body) : x.body;
      };
      if (a.body.empty() || b.body.empty()) {
        const Term& x = a.body.empty() ? b : a;
        t.body = x.body;
        t.prec = x.prec;
        t.spaced = x.spaced;
      } else {
        t.body = nt_.product(wrap(a), wrap(b));
        t.prec = kProd;
        t.spaced = a.spaced || b.spaced;
      }
      return t;
    }
    if ((op == "div" || op == "safe_div") && k == 2 && scalar(1) && in(0).den.empty() &&
        in(1).den.empty() && in(1).coef != 0) {
      Term t = in(0);
      if (in(1).body.empty() && in(1).coef > 0) {
        t.den.push_back(coef_text(in(1).coef, nt_.latex));  // x/2 stays a division
        return t;
      }
      t.coef /= in(1).coef;
      if (!in(1).body.empty()) {
        Term b = in(1);
        b.coef = 1;
        t.den.push_back(as_den(b));
      }
      return t;
    }
    if (n.op->traits().rows == RowRole::matmul && k == 2 && !in(0).body.empty() &&
        !in(1).body.empty()) {
      const MatmulAttrs m = matmul_attrs(n.attrs);
      const Term &a = in(0), &b = in(1);
      std::string sa = a.body, sb = b.body;
      if (a.prec < kProd || (a.prec == kProd && !a.spaced) ||
          (m.transpose_a && a.prec < kPow + 1 && a.prec != 100)) {
        sa = nt_.paren(sa);
      }
      if (b.prec <= kProd || (m.transpose_b && b.prec != 100)) sb = nt_.paren(sb);
      Term t = body_term(nt_.matmul(sa + (m.transpose_a ? nt_.transposed() : ""),
                                    sb + (m.transpose_b ? nt_.transposed() : "")),
                         kProd, true);
      t.coef = a.coef * b.coef;
      t.den = a.den;
      t.den.insert(t.den.end(), b.den.begin(), b.den.end());
      return t;
    }
    if ((op == "add" || op == "sub") && k == 2) {
      int pa = 0;
      std::string sa = operand(in(0), kSum, true, 0, &pa);
      Term b = in(1);
      bool minus = op == "sub";
      if (b.coef < 0) {
        b.coef = -b.coef;
        minus = !minus;
      }
      std::string sb = operand(b, kSum, !minus, 1);
      return body_term(sa + (minus ? " - " : " + ") + sb, kSum);
    }
    if (op == "size" && k == 1) {
      // The extents counted (the attributes list axes; none: all): one open extent is n.
      const Shape& s = g_.node(n.inputs[0]).shape;
      Shape counted;
      for (Dim a : n.attrs.ints) {
        Dim ax = a < 0 ? a + static_cast<Dim>(s.size()) : a;
        if (ax >= 0 && ax < static_cast<Dim>(s.size())) counted.push_back(s[ax]);
      }
      if (n.attrs.ints.empty()) counted = s;
      if (std::count(counted.begin(), counted.end(), open) == 1) {
        Term t = body_term("n", 100);
        for (Dim d : counted) {
          if (d != open) t.coef *= static_cast<double>(d);
        }
        return t;
      }
    }
    // Anything else: the op's own form over its printed operands.
    std::vector<std::string> args, raw;
    std::vector<int> precs;
    const int p = n.op->precedence();
    for (std::size_t i = 0; i < k; ++i) {
      int q = 0;
      args.push_back(operand(in(i), p, n.op->associative(), i, &q));
      raw.push_back(render(in(i)).first);
      precs.push_back(q);
    }
    if (!nt_.latex) return body_term(n.op->format(args, n.attrs), p);
    std::string s;
    if (latex_special(op, raw, precs, s)) return body_term(s, 100);
    std::vector<std::string> holders;
    for (std::size_t i = 0; i < k; ++i) holders.push_back(std::string("\x01") + char(i + 1));
    return body_term(latex_of_format(n.op->format(holders, n.attrs), args), p);
  }

  const Graph<T>& g_;
  Notation nt_;
  std::vector<Term> terms_;
};

}  // namespace

template <class T>
std::string to_string(Expr<T> e) {
  return Printer<T>(e.graph("to_string"), Notation{false}).print(e.id());
}

template <class T>
std::string to_latex(Expr<T> e) {
  return Printer<T>(e.graph("to_latex"), Notation{true}).print(e.id());
}

template std::string to_string(Expr<float>);
template std::string to_string(Expr<double>);
template std::string to_latex(Expr<float>);
template std::string to_latex(Expr<double>);

}  // namespace xgrad
