// Stopping rules (see include/xgrad/optim/stopping.hpp).
#include "xgrad/optim/stopping.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <memory>
#include <optional>
#include <utility>

#include "num.hpp"
#include "xgrad/error.hpp"

namespace xgrad::optim {

using detail::num;

const char* reason_name(StopReason r) {
  switch (r) {
    case StopReason::none:
      return "none";
    case StopReason::grad_norm:
      return "grad_norm";
    case StopReason::max_steps:
      return "max_steps";
    case StopReason::loss_plateau:
      return "loss_plateau";
    case StopReason::time_budget:
      return "time_budget";
    case StopReason::custom:
      return "custom";
  }
  return "?";
}

Stopping::Stopping(StopReason reason, Rule rule) {
  if (!rule) throw ValueError("Stopping: empty rule");
  rules_.push_back(Entry{reason, rule, rule});
}

bool Stopping::check(const Progress& p) {
  if (result_.stopped()) return true;
  for (auto& e : rules_) {
    std::string why = e.current(p);
    if (!why.empty()) {
      result_ = StopResult{e.reason, std::move(why), p.step, p.loss, p.grad_norm};
      return true;
    }
  }
  return false;
}

void Stopping::reset() {
  result_ = StopResult{};
  for (auto& e : rules_) e.current = e.initial;
}

Stopping& Stopping::operator|=(const Stopping& o) {
  rules_.insert(rules_.end(), o.rules_.begin(), o.rules_.end());
  return *this;
}

Stopping operator|(Stopping a, const Stopping& b) {
  a |= b;
  return a;
}

Stopping any(const std::vector<Stopping>& rules) {
  Stopping s;
  for (const auto& r : rules) s |= r;
  return s;
}

Stopping grad_norm_below(double eps) {
  if (!(eps >= 0) || !std::isfinite(eps)) {
    throw ValueError("grad_norm_below: eps = " + num(eps) + " must be finite and not negative");
  }
  return Stopping(StopReason::grad_norm, [eps](const Progress& p) -> std::string {
    if (!(p.grad_norm <= eps)) return {};
    return "gradient norm " + num(p.grad_norm) + " <= " + num(eps) + " after " +
           std::to_string(p.step) + " steps";
  });
}

Stopping max_steps(std::size_t n) {
  return Stopping(StopReason::max_steps, [n](const Progress& p) -> std::string {
    if (p.step < n) return {};
    return "reached the maximum of " + std::to_string(n) + " steps";
  });
}

Stopping loss_change_below(double tol, std::size_t window) {
  if (!(tol >= 0) || !std::isfinite(tol)) {
    throw ValueError("loss_change_below: tol = " + num(tol) + " must be finite and not negative");
  }
  if (window < 2) {
    throw ValueError("loss_change_below: window = " + std::to_string(window) +
                     " must be at least 2");
  }
  // The window lives in the closure; std::function copies it, so copies are independent.
  return Stopping(
      StopReason::loss_plateau,
      [tol, window, recent = std::deque<double>()](const Progress& p) mutable -> std::string {
        if (std::isnan(p.loss)) return {};
        recent.push_back(p.loss);
        if (recent.size() > window) recent.pop_front();
        if (recent.size() < window) return {};
        auto [lo, hi] = std::minmax_element(recent.begin(), recent.end());
        if (!(*hi - *lo <= tol)) return {};
        return "loss changed by " + num(*hi - *lo) + " <= " + num(tol) + " over the last " +
               std::to_string(window) + " checks, after " + std::to_string(p.step) + " steps";
      });
}

Stopping time_budget(std::chrono::duration<double> budget) {
  if (!(budget.count() >= 0)) throw ValueError("time_budget: the budget must not be negative");
  using Clock = std::chrono::steady_clock;
  return Stopping(StopReason::time_budget,
                  [budget, start = std::optional<Clock::time_point>()](
                      const Progress& p) mutable -> std::string {
                    auto now = Clock::now();
                    if (!start) start = now;
                    std::chrono::duration<double> used = now - *start;
                    if (used < budget) return {};
                    return "wall-clock budget of " + num(budget.count()) + " s used up (" +
                           num(used.count()) + " s) after " + std::to_string(p.step) + " steps";
                  });
}

Stopping stop_if(std::string message, std::function<bool(const Progress&)> pred) {
  if (!pred) throw ValueError("stop_if: empty predicate");
  return Stopping(
      StopReason::custom,
      [message = std::move(message), pred = std::move(pred)](const Progress& p) -> std::string {
        if (!pred(p)) return {};
        return message + " after " + std::to_string(p.step) + " steps";
      });
}

}  // namespace xgrad::optim
