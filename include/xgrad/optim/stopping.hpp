/// @file stopping.hpp
/// @brief Stopping rules for a training loop, composable with `|` (stop when any holds).
///
/// The loop checks before each update, the way the lecture note does:
/// @code
/// auto stop = optim::grad_norm_below(1e-5) | optim::max_steps(100000);
/// for (;;) {
///   const auto& out = f.run();                      // loss, then the gradients
///   if (stop(opt.steps(), out[0](), optim::global_norm(out, 1))) break;
///   opt.step(out, 1);
/// }
/// std::cout << stop.result().message << "\n";
/// @endcode
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace xgrad::optim {

/// What a stopping rule sees at a check: the number of updates made so far, the current
/// loss and the global gradient norm (NaN when the caller does not provide one).
struct Progress {
  std::size_t step = 0;                                         ///< Updates made so far.
  double loss = std::numeric_limits<double>::quiet_NaN();       ///< Current loss, or NaN.
  double grad_norm = std::numeric_limits<double>::quiet_NaN();  ///< Gradient norm, or NaN.
};

/// Which rule stopped the loop.
enum class StopReason {
  none,          ///< Not stopped (yet).
  grad_norm,     ///< The gradient norm fell to epsilon or below.
  max_steps,     ///< The step budget was used up.
  loss_plateau,  ///< The loss changed by no more than the tolerance over the window.
  time_budget,   ///< The wall-clock budget ran out.
  custom,        ///< A user rule (stop_if).
};

/// Name of a reason ("grad_norm", "max_steps"...).
const char* reason_name(StopReason r);

/// Why and when a loop stopped.
struct StopResult {
  StopReason reason = StopReason::none;  ///< The first rule that held, or none.
  std::string message;                   ///< Human-readable explanation with the numbers.
  std::size_t steps = 0;                 ///< Updates made when the rule held.
  double loss = std::numeric_limits<double>::quiet_NaN();       ///< Loss at that check.
  double grad_norm = std::numeric_limits<double>::quiet_NaN();  ///< Gradient norm then.
  /// True once stopped.
  bool stopped() const { return reason != StopReason::none; }
  /// True once stopped.
  explicit operator bool() const { return stopped(); }
};

/// A set of stopping rules; the loop stops at the first check where any of them holds.
/// A value type: copies carry their own state (loss window, clock).
class Stopping {
 public:
  /// One rule: given the progress, an explanation when it holds, an empty string otherwise.
  using Rule = std::function<std::string(const Progress&)>;

  /// No rule: never stops.
  Stopping() = default;
  /// A single rule reporting the given reason.
  Stopping(StopReason reason, Rule rule);

  /// Checks every rule (in order); returns true and records the result once one holds.
  /// After stopping, it keeps returning true until reset().
  bool check(const Progress& p);
  /// check({step, loss, grad_norm}).
  bool operator()(std::size_t step, double loss = std::numeric_limits<double>::quiet_NaN(),
                  double grad_norm = std::numeric_limits<double>::quiet_NaN()) {
    return check(Progress{step, loss, grad_norm});
  }
  /// Why and when it stopped (reason none while running).
  const StopResult& result() const { return result_; }
  /// Forgets the result and the rules' state (loss window, clock) to run again.
  void reset();
  /// Number of rules.
  std::size_t size() const { return rules_.size(); }
  /// Adds the rules of o: stop when any holds.
  Stopping& operator|=(const Stopping& o);

 private:
  struct Entry {
    StopReason reason;
    Rule initial;  // kept to reset the state captured by the rule
    Rule current;
  };
  std::vector<Entry> rules_;
  StopResult result_;
};

/// Stop when any of a or b holds.
Stopping operator|(Stopping a, const Stopping& b);
/// Stop when any of the rules holds.
Stopping any(const std::vector<Stopping>& rules);

/// The note's test: stop once the gradient norm is at most eps (|f'(x)| in 1-D, the
/// Euclidean norm of all gradients in n-D). Never holds while the norm is NaN.
Stopping grad_norm_below(double eps);
/// Stop once n updates were made (Progress::step >= n).
Stopping max_steps(std::size_t n);
/// Stop once the last `window` reported losses (window >= 2) span at most tol:
/// max - min <= tol. NaN losses are not counted.
Stopping loss_change_below(double tol, std::size_t window = 10);
/// Stop once the wall-clock time since the first check (or reset) reaches the budget.
Stopping time_budget(std::chrono::duration<double> budget);
/// A user rule: stop with the given message once pred(progress) is true.
Stopping stop_if(std::string message, std::function<bool(const Progress&)> pred);

}  // namespace xgrad::optim
