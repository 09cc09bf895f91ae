// Tutorial 8: a convolutional network classifying Fashion-MNIST.
//
// A convolution is one more op of the graph: its gradient is built from convolutions
// again, which a tiny example prints, checks against finite differences and draws. Then
// a small convolutional network built from xgrad::nn layers (two convolution blocks with
// batch normalisation and max pooling, then two linear layers with dropout) is trained
// with Adam on the Fashion-MNIST images of tutorial 5, with a progress bar, a
// loss/accuracy history written to CSV and plotted, and a final test accuracy above 91%.
// README.md walks through this file step by step.
//
// Usage: 08_cnn [--epochs N] [--train N] [--data DIR]
//   --epochs N  number of epochs (default 8)
//   --train N   train on the first N of the 55000 training images (default 55000)
//   --data DIR  folder of the IDX files (default /usr/share/datasets/fashion-mnist)
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>
#include <xgrad/io.hpp>  // prints arrays with operator<<
#include <xgrad/xgrad.hpp>
#include <xtensor/xview.hpp>

#include "cli.hpp"
#include "figures.hpp"

namespace data = xgrad::data;
namespace nn = xgrad::nn;
namespace optim = xgrad::optim;

// [model]
// Two convolution blocks (28x28 -> 14x14 -> 7x7 pixels, 1 -> 16 -> 32 channels), then a
// classifier on the 32 x 7 x 7 features.
void build(nn::Sequential<float>& model) {
  const nn::Conv2dOptions same{.padding = {1, 1}, .bias = false};  // 3x3 keeps 28x28
  model.add<nn::Conv2d>(1, 16, std::array<std::size_t, 2>{3, 3}, same);
  model.add<nn::BatchNorm2d>(16);
  model.add<nn::ReLU>();
  model.add<nn::MaxPool2d>(std::array<xgrad::Dim, 2>{2, 2});  // -> (n, 16, 14, 14)
  model.add<nn::Conv2d>(16, 32, std::array<std::size_t, 2>{3, 3}, same);
  model.add<nn::BatchNorm2d>(32);
  model.add<nn::ReLU>();
  model.add<nn::MaxPool2d>(std::array<xgrad::Dim, 2>{2, 2});  // -> (n, 32, 7, 7)
  model.add<nn::Flatten>();                                   // -> (n, 1568)
  model.add<nn::Linear>(32 * 7 * 7, 128);
  model.add<nn::ReLU>();
  model.add<nn::Dropout>(0.3);
  model.add<nn::Linear>(128, 10);
}
// [end]

// [progress]
// "epoch 3/8 [##########..........] 215/430": redrawn in place on a terminal, printed
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
// How many rows of logits (n, 10) give the largest score to the batch's label.
std::size_t count_correct(const xt::xarray<float>& logits,
                          const data::Batch<float, std::int64_t>& batch) {
  std::size_t correct = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    std::size_t best = 0;
    for (std::size_t c = 1; c < logits.shape(1); ++c) {
      if (logits(i, c) > logits(i, best)) best = c;
    }
    correct += best == static_cast<std::size_t>(batch.targets(i));
  }
  return correct;
}

// Mean loss and accuracy of the model over a data set, in batches of 500.
struct Score {
  double loss = 0, accuracy = 0;
};
Score evaluate(xgrad::Function<float>& eval, xgrad::Expr<float> images, xgrad::Expr<float> labels,
               const data::Dataset<float, std::int64_t>& set) {
  data::DataLoader<float, std::int64_t> loader(set, {.batch_size = 500, .shuffle = false});
  double loss = 0;
  std::size_t correct = 0;
  for (const auto& batch : loader.epoch(0)) {
    const auto& out = eval.run(batch.feeds(images, labels));  // {mean loss, logits}
    loss += out[0]() * batch.size();
    correct += count_correct(out[1], batch);
  }
  return {loss / set.size(), double(correct) / set.size()};
}
// [end]

// The gradient of a 3x3 convolution of a 4x4 image, printed, drawn, written as plain
// convolutions and checked against finite differences (double precision).
void tiny_convolution(const std::function<void(bool, const std::string&)>& check) {
  // [conv]
  // A 4x4 image and a 3x3 kernel: y = conv2d(x, w) is 2x2 (one value per position of the
  // window). g stands for the gradient that arrives at y from the rest of a graph.
  xgrad::Graph<double> tg;
  xt::xarray<double> pixels = xt::arange<double>(1, 17);  // 1, 2, ..., 16
  pixels.reshape({1, 1, 4, 4});                           // (images, channels, height, width)
  auto x = tg.parameter("x", pixels);
  auto w = tg.parameter("w", xt::xarray<double>{{{{1, 0, -1}, {2, 0, -2}, {1, 0, -1}}}});
  auto g = tg.input("g", {1, 1, 2, 2});
  auto y = xgrad::conv2d(x, w);
  auto grads = xgrad::grad(y, {x, w}, g);  // the gradients of sum(y * g)
  std::cout << "y     = " << xgrad::to_string(y) << "\n"
            << "dL/dx = " << xgrad::to_string(grads[0]) << "\n"
            << "dL/dw = " << xgrad::to_string(grads[1]) << "\n";
  check(figures::draw_graph("conv_gradient", xgrad::to_dot(tg)), "graph drawn");
  // [end]

  // [conv-check]
  // The same numbers from plain conv2d: dL/dx is g, padded by 2, convolved with w rotated
  // by 180 degrees; dL/dw is x convolved with g (a 2x2 "kernel").
  const xt::xarray<double> g_value = {{{{1, -1}, {2, 0.5}}}};
  auto dx_dw = xgrad::compile({grads[0], grads[1]});
  const auto& auto_grads = dx_dw.run({{g, g_value}});
  auto w_rotated = tg.constant(xt::xarray<double>(xt::flip(xt::flip(tg.value(w), 2), 3)));
  auto as_conv =
      xgrad::compile({xgrad::conv2d(g, w_rotated, {.padding = {2, 2}}), xgrad::conv2d(x, g)});
  const auto& conv_values = as_conv.run({{g, g_value}});
  std::cout << "g     = " << xt::view(g_value, 0, 0) << "\n"
            << "dL/dx = " << xt::view(auto_grads[0], 0, 0) << "\n"
            << "dL/dw = " << xt::view(auto_grads[1], 0, 0) << "\n";
  check(xt::allclose(auto_grads[0], conv_values[0]) && xt::allclose(auto_grads[1], conv_values[1]),
        "the gradients are convolutions");
  const auto first = xgrad::check_gradients(y, {x, w});
  const auto second = xgrad::check_gradients(grads[1], {x}, {{g, g_value}});
  std::cout << "first derivatives:  " << first.summary() << "\n"
            << "second derivative:  " << second.summary() << "\n";
  check(first.ok && second.ok, "conv2d's gradients agree with finite differences");
  // [end]
}

int main(int argc, char** argv) {
  std::size_t epochs = 8, train_limit = 55000;
  std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!cli::parse(
          argc, argv,
          {{"--epochs", "N", [&](const char* v) { epochs = std::max(1, std::atoi(v)); }},
           {"--train", "N", [&](const char* v) { train_limit = std::max(1, std::atoi(v)); }},
           {"--data", "DIR", [&](const char* v) { dir = v; }}})) {
    return 2;
  }
  bool ok = true;
  const auto check = cli::checker(ok);

  tiny_convolution(check);

  // [data]
  const std::string train_images = dir + "/train-images-idx3-ubyte.gz";
  if (!std::filesystem::exists(train_images)) {
    std::cout << "SKIPPED: Fashion-MNIST not found in " << dir
              << " (install it with: sudo apt-get install dataset-fashion-mnist)\n";
    return 0;
  }
  const auto pixels = data::IdxOptions().scale(1.0 / 255);  // (n, 28, 28) in [0, 1]
  data::IdxDataset<float, std::int64_t> all_train(train_images, dir + "/train-labels-idx1-ubyte.gz",
                                                  pixels);
  data::IdxDataset<float, std::int64_t> test(dir + "/t10k-images-idx3-ubyte.gz",
                                             dir + "/t10k-labels-idx1-ubyte.gz", pixels);
  auto [full_train, validation] = data::split(all_train, 5000.0 / all_train.size(), /*seed=*/1);
  // --train N keeps the first N training images (the split shuffled them): short runs.
  std::vector<std::size_t> kept(std::min(train_limit, full_train.size()));
  std::iota(kept.begin(), kept.end(), 0);
  data::Subset<float, std::int64_t> train(full_train, kept);
  std::cout << "Fashion-MNIST: " << train.size() << " training, " << validation.size()
            << " validation, " << test.size() << " test images\n";
  // [end]

  // [graph]
  xgrad::Graph<float> g;
  auto images = g.input("images", {xgrad::open, 28, 28});
  auto labels = g.input("labels", {xgrad::open}, xgrad::DType::int64);
  auto x = xgrad::unsqueeze(images, {1});  // (n, 1, 28, 28): one channel, grey
  nn::manual_seed(42);
  nn::Sequential<float> model(g);
  build(model);
  auto params = model.parameters();
  model.train();  // batch statistics, dropout
  auto train_logits = model(x);
  auto loss = xgrad::cross_entropy(train_logits, labels);
  std::vector<xgrad::Expr<float>> outputs{loss, train_logits};
  for (auto gr : xgrad::grad(loss, params)) outputs.push_back(gr);
  const auto updates = model.updates();  // running statistics, dropout's step
  auto train_step = xgrad::compile(outputs, {}, updates);
  model.eval();  // running statistics, no dropout
  auto logits = model(x);
  auto eval = xgrad::compile({xgrad::cross_entropy(logits, labels), logits});
  std::size_t count = 0;
  for (auto p : params) count += g.value(p).size();
  std::cout << "parameters: " << params.size() << " arrays, " << count << " values; "
            << updates.size() << " buffer updates per step\n";
  // [end]

  // [train]
  const std::size_t batch_size = 64;
  data::DataLoader<float, std::int64_t> loader(
      train, {.batch_size = batch_size, .shuffle = true, .seed = 7});
  const std::size_t steps_per_epoch = loader.num_batches();
  optim::Adam<float> adam(params, optim::cosine(2e-3, epochs * steps_per_epoch, 1e-5));
  std::ofstream history("history.csv");
  history << "epoch,train_loss,train_accuracy,validation_loss,validation_accuracy,seconds\n";
  std::vector<double> epoch_axis, train_losses, validation_losses, train_accs, validation_accs;
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t epoch = 1; epoch <= epochs; ++epoch) {
    adam.set_epoch(epoch);
    double sum = 0;
    std::size_t seen = 0, correct = 0, done = 0;
    for (const auto& batch : loader.epoch(epoch)) {
      const auto& out = train_step.run(batch.feeds(images, labels));  // {loss, logits, ...}
      adam.step(out[0](), out, 2);  // the gradients start at output 2
      sum += out[0]() * batch.size();
      correct += count_correct(out[1], batch);
      seen += batch.size();
      std::ostringstream tail;
      tail << " loss " << std::fixed << std::setprecision(4) << sum / seen << " accuracy "
           << double(correct) / seen;
      progress(epoch, epochs, ++done, steps_per_epoch, tail.str());
    }
    const Score va = evaluate(eval, images, labels, validation);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "  validation loss " << std::fixed << std::setprecision(4) << va.loss
              << " accuracy " << va.accuracy << " | " << std::setprecision(1) << seconds << " s\n"
              << std::defaultfloat;
    history << epoch << "," << sum / seen << "," << double(correct) / seen << "," << va.loss << ","
            << va.accuracy << "," << seconds << "\n";
    epoch_axis.push_back(epoch);
    train_losses.push_back(sum / seen);
    train_accs.push_back(double(correct) / seen);
    validation_losses.push_back(va.loss);
    validation_accs.push_back(va.accuracy);
  }
  history.close();
  std::cout << "history: " << figures::absolute("history.csv") << "\n";
  // [end]

  // [test]
  const Score final_test = evaluate(eval, images, labels, test);
  const double total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "training and testing took " << std::fixed << std::setprecision(1) << total
            << " s\ntest accuracy: " << std::setprecision(4) << final_test.accuracy << "\n"
            << std::defaultfloat;
  // [end]

  // [plots]
  figures::Plot loss_plot{
      .name = "loss",
      .settings = {"set xlabel 'epoch'", "set xtics 1", "set ylabel 'cross-entropy'",
                   "set offsets 0.5, 0.5, 0, 0", "set title 'Loss'"},
      .series = {{"train (running mean)", epoch_axis, train_losses, "linespoints pt 7"},
                 {"validation", epoch_axis, validation_losses, "linespoints pt 7"}}};
  figures::Plot accuracy_plot{
      .name = "accuracy",
      .settings = {"set xlabel 'epoch'", "set xtics 1", "set ylabel 'accuracy'",
                   "set key bottom right", "set offsets 0.5, 0.5, 0, 0", "set title 'Accuracy'"},
      .series = {{"train (running mean)", epoch_axis, train_accs, "linespoints pt 7"},
                 {"validation", epoch_axis, validation_accs, "linespoints pt 7"}}};
  check(figures::draw(loss_plot) && figures::draw(accuracy_plot), "plots drawn");
  // [end]

  // [checks]
  // The full run (the defaults) must reach 91%; a short one, 80%.
  const bool full_run = epochs >= 8 && train.size() == full_train.size();
  const double target = full_run ? 0.91 : 0.80;
  check(final_test.accuracy >= target, "test accuracy >= " + std::to_string(target).substr(0, 4));
  const auto& first_norm = dynamic_cast<const nn::BatchNorm2d<float>&>(model[1]);
  check(xt::amax(xt::abs(g.value(first_norm.running_mean())))() > 0,
        "training updated batch norm's running statistics");
  check(epochs == 1 || train_losses.back() < train_losses.front(), "training lowered the loss");
  std::cout << (ok ? "all checks passed" : "SOME CHECKS FAILED") << "\n";
  return ok ? 0 : 1;
  // [end]
}
