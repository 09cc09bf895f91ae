// Tutorial 8: a convolutional network classifying Fashion-MNIST.
//
// A convolution is one more op of the graph: its gradient is built from convolutions
// again, which a tiny example prints, checks against finite differences and draws. Then
// a small convolutional network built from xgrad::nn layers (two convolution blocks with
// batch normalisation and max pooling, then two linear layers with dropout) is trained
// with Adam by a Trainer on the Fashion-MNIST images of tutorial 5, with a progress bar,
// a loss/accuracy history written to CSV and plotted, and a final test accuracy above 91%.
// README.md walks through this file step by step.
//
// Usage: 08_cnn [--epochs N] [--train N] [--data DIR]
//   --epochs N  number of epochs (default 8)
//   --train N   train on the first N of the 55000 training images (default 55000)
//   --data DIR  folder of the IDX files (default /usr/share/datasets/fashion-mnist)

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <iostream>
#include <numeric>
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
namespace train = xgrad::train;

// [model]
// Two convolution blocks (28x28 -> 14x14 -> 7x7 pixels, 1 -> 16 -> 32 channels), then a
// classifier on the 32 x 7 x 7 features.
void build(nn::Sequential<float>& model) {
  // (n, 28, 28) -> (n, 1, 28, 28): one channel, grey.
  model.add<nn::Lambda>([](xgrad::Expr<float> x) { return xgrad::unsqueeze(x, {1}); });
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
  data::Subset<float, std::int64_t> train_set(full_train, kept);
  std::cout << "Fashion-MNIST: " << train_set.size() << " training, " << validation.size()
            << " validation, " << test.size() << " test images\n";
  // [end]

  // [graph]
  xgrad::Graph<float> g;
  auto images = g.input("images", {xgrad::open, 28, 28});
  auto labels = g.input("labels", {xgrad::open}, xgrad::DType::int64);
  nn::manual_seed(42);
  nn::Sequential<float> model(g);
  build(model);
  // The training graph in training mode (batch statistics, dropout, and the updates of the
  // running statistics), the evaluation graph in evaluation mode, over the same parameters.
  const auto task = train::supervised<float>(
      model, images, labels, [](auto logits, auto y) { return xgrad::cross_entropy(logits, y); });
  std::size_t count = 0;
  for (auto p : model.parameters()) count += g.value(p).size();
  std::cout << "parameters: " << model.parameters().size() << " arrays, " << count << " values; "
            << task.updates.size() << " buffer updates per step\n";
  // [end]

  // [train]
  data::DataLoader<float, std::int64_t> loader(train_set, {.batch_size = 64, .seed = 7});
  data::DataLoader<float, std::int64_t> val_loader(validation,
                                                   {.batch_size = 500, .shuffle = false});
  optim::Adam<float> adam(model.parameters(),
                          optim::cosine(2e-3, epochs * loader.num_batches(), 1e-5));
  train::Trainer<float> trainer(task, adam, {.metrics = {train::accuracy<float>()}});
  trainer.add(std::make_shared<train::ProgressBar<float>>())
      .add(std::make_shared<train::CsvLogger<float>>("history.csv"))
      .add(std::make_shared<train::HistoryPlot<float>>("history"));
  const auto& history = trainer.fit(loader, {.epochs = epochs, .validation = &val_loader});
  // [end]

  // [test]
  data::DataLoader<float, std::int64_t> test_loader(test, {.batch_size = 500, .shuffle = false});
  const auto scores = trainer.evaluate(test_loader);
  std::cout << "training and testing took " << std::fixed << std::setprecision(1)
            << trainer.elapsed() << " s\ntest accuracy: " << std::setprecision(4)
            << scores.get("accuracy") << "\n"
            << std::defaultfloat;
  // [end]

  // [checks]
  // The full run (the defaults) must reach 91%; a short one, 80%.
  const bool full_run = epochs >= 8 && train_set.size() == full_train.size();
  const double target = full_run ? 0.91 : 0.80;
  check(scores.get("accuracy") >= target,
        "test accuracy >= " + std::to_string(target).substr(0, 4));
  const auto& first_norm = dynamic_cast<const nn::BatchNorm2d<float>&>(model[2]);
  check(xt::amax(xt::abs(g.value(first_norm.running_mean())))() > 0,
        "training updated batch norm's running statistics");
  check(epochs == 1 || history.last("loss") < history.column("loss").front(),
        "training lowered the loss");
  std::cout << (ok ? "all checks passed" : "SOME CHECKS FAILED") << "\n";
  return ok ? 0 : 1;
  // [end]
}
