// Tutorial 5: a custom model, a multi-layer perceptron classifying Fashion-MNIST.
//
// A model is a plain C++ class that owns parameters and builds graph nodes. This one is a
// multi-layer perceptron (784 -> 256 -> 128 -> 10, ReLU) trained with Adam on minibatches
// from the DataLoader, with a progress bar per epoch, a loss/accuracy history written to
// CSV and plotted, and its parameters saved to .npy files and loaded back into a fresh
// model. Data: Debian's dataset-fashion-mnist package (60000 training and 10000 test
// images of clothes, 28x28 grey levels, 10 classes).
// README.md walks through this file step by step.
//
// Usage: 05_custom_model [--epochs N] [--data DIR]
//   --epochs N  number of epochs (default 12)
//   --data DIR  folder of the IDX files (default /usr/share/datasets/fashion-mnist)
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>
#include <xgrad/xgrad.hpp>

#include "cli.hpp"
#include "figures.hpp"

namespace data = xgrad::data;
namespace optim = xgrad::optim;

// [model]
// y = W3 relu(W2 relu(W1 x + b1) + b2) + b3, for a batch of rows x.
class Mlp {
 public:
  Mlp(xgrad::Graph<float>& g, const std::vector<std::size_t>& sizes, std::uint32_t seed) {
    std::mt19937 rng(seed);
    for (std::size_t i = 0; i + 1 < sizes.size(); ++i) {
      // He initialisation: weights ~ N(0, 2 / fan_in) keep the activations' scale through
      // ReLU layers; biases start at 0.
      std::normal_distribution<float> normal(0.0f, std::sqrt(2.0f / sizes[i]));
      xt::xarray<float> w = xt::xarray<float>::from_shape({sizes[i], sizes[i + 1]});
      for (auto& v : w) v = normal(rng);
      const std::string k = std::to_string(i + 1);
      weights_.push_back(g.parameter("W" + k, std::move(w)));
      biases_.push_back(g.parameter("b" + k, xt::zeros<float>({sizes[i + 1]})));
    }
  }

  // Logits (n, classes) for inputs x (n, features): new nodes of x's graph.
  xgrad::Expr<float> operator()(xgrad::Expr<float> x) const {
    for (std::size_t i = 0; i < weights_.size(); ++i) {
      x = xgrad::matmul(x, weights_[i]) + biases_[i];  // the bias broadcasts over rows
      if (i + 1 < weights_.size()) x = xgrad::relu(x);
    }
    return x;
  }

  // Every parameter, in a fixed order: W1, b1, W2, b2, ...
  std::vector<xgrad::Expr<float>> parameters() const {
    std::vector<xgrad::Expr<float>> ps;
    for (std::size_t i = 0; i < weights_.size(); ++i) {
      ps.push_back(weights_[i]);
      ps.push_back(biases_[i]);
    }
    return ps;
  }

 private:
  std::vector<xgrad::Expr<float>> weights_, biases_;
};
// [end]

// [progress]
// "epoch 3/12 [##########..........] 215/430": redrawn in place on a terminal, printed
// once at the end of the epoch otherwise (logs, ctest).
void progress(std::size_t epoch, std::size_t epochs, std::size_t done, std::size_t total,
              const std::string& tail) {
  static const bool tty = isatty(STDOUT_FILENO);
  if (!tty && done < total) return;
  const std::size_t width = 30, filled = width * done / total;
  std::cout << (tty ? "\r" : "") << "epoch " << epoch << "/" << epochs << " ["
            << std::string(filled, '#') << std::string(width - filled, '.') << "] " << done << "/"
            << total << tail << (done == total ? "\n" : "") << std::flush;
}
// [end]

// [evaluate]
// Mean loss and accuracy of the model over a data set, in batches of 1000.
struct Score {
  double loss = 0, accuracy = 0;
};
Score evaluate(xgrad::Function<float>& eval, xgrad::Expr<float> x, xgrad::Expr<float> labels,
               const data::Dataset<float, std::int64_t>& set) {
  data::DataLoader<float, std::int64_t> loader(set, {.batch_size = 1000, .shuffle = false});
  double loss = 0;
  std::size_t correct = 0;
  for (const auto& batch : loader.epoch(0)) {
    const auto& out = eval.run(batch.feeds(x, labels));  // {mean loss, logits}
    loss += out[0]() * batch.size();
    const auto& logits = out[1];
    for (std::size_t i = 0; i < batch.size(); ++i) {
      std::size_t best = 0;
      for (std::size_t c = 1; c < logits.shape(1); ++c) {
        if (logits(i, c) > logits(i, best)) best = c;
      }
      correct += best == static_cast<std::size_t>(batch.targets(i));
    }
  }
  return {loss / set.size(), double(correct) / set.size()};
}
// [end]

int main(int argc, char** argv) {
  std::size_t epochs = 12;
  std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!cli::parse(argc, argv,
                  {{"--epochs", "N", [&](const char* v) { epochs = std::max(1, std::atoi(v)); }},
                   {"--data", "DIR", [&](const char* v) { dir = v; }}})) {
    return 2;
  }
  bool ok = true;
  const auto check = cli::checker(ok);

  // [data]
  const std::string train_images = dir + "/train-images-idx3-ubyte.gz";
  if (!std::filesystem::exists(train_images)) {
    std::cout << "SKIPPED: Fashion-MNIST not found in " << dir
              << " (install it with: sudo apt-get install dataset-fashion-mnist)\n";
    return 0;
  }
  const auto pixels = data::IdxOptions().scale(1.0 / 255).flatten(true);  // (n, 784) in [0, 1]
  data::IdxDataset<float, std::int64_t> all_train(train_images, dir + "/train-labels-idx1-ubyte.gz",
                                                  pixels);
  data::IdxDataset<float, std::int64_t> test(dir + "/t10k-images-idx3-ubyte.gz",
                                             dir + "/t10k-labels-idx1-ubyte.gz", pixels);
  // 5000 training images are held out to watch for overfitting; the test set is only
  // used once, at the end.
  auto [train, validation] = data::split(all_train, 5000.0 / all_train.size(), /*seed=*/1);
  std::cout << "Fashion-MNIST: " << train.size() << " training, " << validation.size()
            << " validation, " << test.size() << " test images\n";
  // [end]

  // [graph]
  xgrad::Graph<float> g;
  auto x = g.input("x", {xgrad::open, 784});
  auto labels = g.input("labels", {xgrad::open}, xgrad::DType::int64);
  Mlp model(g, {784, 256, 128, 10}, /*seed=*/42);
  auto logits = model(x);
  auto loss = xgrad::cross_entropy(logits, labels);  // mean of -log softmax(logits)[label]
  auto params = model.parameters();
  std::vector<xgrad::Expr<float>> outputs{loss};
  for (auto gr : xgrad::grad(loss, params)) outputs.push_back(gr);
  auto train_step = xgrad::compile(outputs);  // {loss, dloss/dW1, dloss/db1, ...}
  auto eval = xgrad::compile({loss, logits});
  // [end]

  // [train]
  const std::size_t batch_size = 128;
  data::DataLoader<float, std::int64_t> loader(
      train, {.batch_size = batch_size, .shuffle = true, .seed = 7});
  const std::size_t steps_per_epoch = loader.num_batches();
  optim::Adam<float> adam(params, optim::cosine(1e-3, epochs * steps_per_epoch, 1e-5));
  std::ofstream history("history.csv");
  history << "epoch,train_loss,train_accuracy,validation_loss,validation_accuracy,seconds\n";
  std::vector<double> epoch_axis, train_losses, validation_losses, train_accs, validation_accs;
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t epoch = 1; epoch <= epochs; ++epoch) {
    adam.set_epoch(epoch);
    double sum = 0;
    std::size_t seen = 0, done = 0;
    for (const auto& batch : loader.epoch(epoch)) {
      const auto& out = train_step.run(batch.feeds(x, labels));
      adam.step(out[0](), out, 1);  // gradients start at output 1
      sum += out[0]() * batch.size();
      seen += batch.size();
      std::ostringstream tail;
      tail << " loss " << std::fixed << std::setprecision(4) << sum / seen;
      progress(epoch, epochs, ++done, steps_per_epoch, tail.str());
    }
    const Score tr = evaluate(eval, x, labels, train);
    const Score va = evaluate(eval, x, labels, validation);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "  train loss " << std::fixed << std::setprecision(4) << tr.loss << " accuracy "
              << tr.accuracy << " | validation loss " << va.loss << " accuracy " << va.accuracy
              << " | " << std::setprecision(1) << seconds << " s\n"
              << std::defaultfloat;
    history << epoch << "," << tr.loss << "," << tr.accuracy << "," << va.loss << "," << va.accuracy
            << "," << seconds << "\n";
    epoch_axis.push_back(epoch);
    train_losses.push_back(tr.loss);
    validation_losses.push_back(va.loss);
    train_accs.push_back(tr.accuracy);
    validation_accs.push_back(va.accuracy);
  }
  history.close();
  std::cout << "history: " << figures::absolute("history.csv") << "\n";
  // [end]

  // [test]
  const Score final_test = evaluate(eval, x, labels, test);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);  // ru_maxrss: the peak resident memory, in KiB
  std::cout << "test accuracy: " << std::fixed << std::setprecision(4) << final_test.accuracy
            << " (loss " << final_test.loss << "), peak memory " << usage.ru_maxrss / 1024
            << " MiB\n"
            << std::defaultfloat;
  // [end]

  // [save]
  std::filesystem::create_directories("model");
  for (auto p : params) data::save_npy("model/" + p.name() + ".npy", g.value(p));
  std::cout << "saved " << params.size() << " parameters to " << figures::absolute("model") << "\n";
  // [end]

  // [load]
  xgrad::Graph<float> g2;
  auto x2 = g2.input("x", {xgrad::open, 784});
  auto labels2 = g2.input("labels", {xgrad::open}, xgrad::DType::int64);
  Mlp loaded(g2, {784, 256, 128, 10}, /*seed=*/0);  // different random weights...
  for (auto p : loaded.parameters()) {
    g2.value(p) = data::load_npy<float>("model/" + p.name() + ".npy");  // ...replaced
  }
  auto logits2 = loaded(x2);
  auto eval2 = xgrad::compile({xgrad::cross_entropy(logits2, labels2), logits2});
  const Score reloaded = evaluate(eval2, x2, labels2, test);
  std::cout << "loaded model: test accuracy " << std::fixed << std::setprecision(4)
            << reloaded.accuracy << "\n"
            << std::defaultfloat;
  // [end]

  // [plots]
  figures::Plot loss_plot{
      .name = "loss",
      .settings = {"set xlabel 'epoch'", "set ylabel 'cross-entropy'", "set offsets 0.5, 0.5, 0, 0",
                   "set title 'Loss'"},
      .series = {{"train", epoch_axis, train_losses, "linespoints pt 7"},
                 {"validation", epoch_axis, validation_losses, "linespoints pt 7"}}};
  figures::Plot accuracy_plot{
      .name = "accuracy",
      .settings = {"set xlabel 'epoch'", "set ylabel 'accuracy'", "set key bottom right",
                   "set offsets 0.5, 0.5, 0, 0", "set title 'Accuracy'"},
      .series = {{"train", epoch_axis, train_accs, "linespoints pt 7"},
                 {"validation", epoch_axis, validation_accs, "linespoints pt 7"}}};
  check(figures::draw(loss_plot) && figures::draw(accuracy_plot), "plots drawn");
  // [end]

  // [checks]
  check(epochs < 12 || final_test.accuracy >= 0.88, "test accuracy >= 0.88");
  check(reloaded.accuracy == final_test.accuracy, "the loaded model predicts the same");
  check(train_losses.back() < train_losses.front(), "training lowered the loss");
  std::cout << (ok ? "all checks passed" : "SOME CHECKS FAILED") << "\n";
  return ok ? 0 : 1;
  // [end]
}
