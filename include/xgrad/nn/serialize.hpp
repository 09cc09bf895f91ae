/// @file serialize.hpp
/// @brief Model files: save() and load() every parameter and buffer of a Module as a
/// NumPy .npz archive keyed like PyTorch's state_dict ("features.0.weight"), which
/// numpy.load reads. write_state() and read_state() do the same on an archive that holds
/// more (a checkpoint).
#pragma once

#include <string>
#include <vector>

#include "xgrad/nn/module.hpp"

namespace xgrad::data {
class NpzWriter;
class NpzFile;
}  // namespace xgrad::data

namespace xgrad::nn {

/// How save() writes a model file.
struct SaveOptions {
  bool compress = false;  ///< Deflate the members (numpy.savez_compressed); stored by default.
  std::string prefix;     ///< Prepended to every key ("model." puts the state under model.*).
};

/// How load() matches a file to a model.
struct LoadOptions {
  /// Throw one DataError listing every missing, unexpected and mismatched entry, and load
  /// nothing; false loads every entry that matches and reports the rest.
  bool strict = true;
  /// Only arrays whose names start with it are the model's, read without it.
  std::string prefix;
};

/// An entry whose name matches but whose content does not fit the model.
struct LoadMismatch {
  std::string name;     ///< The model's key.
  std::string problem;  ///< "shape (3, 4) in the file, (4, 3) in the model", a dtype, ...
};

/// What load() did: which keys it wrote and which it could not.
struct LoadReport {
  std::vector<std::string> loaded;       ///< Keys whose values were written into the model.
  std::vector<std::string> missing;      ///< Model keys the file lacks.
  std::vector<std::string> unexpected;   ///< File arrays (under the prefix) the model lacks.
  std::vector<LoadMismatch> mismatched;  ///< Keys present in both that do not fit.
  /// True when every key matched in both directions.
  bool complete() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  /// "2 missing: 'a', 'b'; 1 unexpected: 'c'" (empty when complete()).
  std::string to_string() const;
};

/// Adds every parameter, then every buffer, of m (Module::state()) to w as arrays named
/// prefix + key, of element type T.
template <class T>
void write_state(data::NpzWriter& w, const Module<T>& m, const std::string& prefix = "");
/// Writes the arrays of f named options.prefix + key into m's parameters and buffers, in
/// place (compiled Functions of the model see the new values), converting any numeric
/// dtype to T. Text entries are ignored. Strict: throws DataError naming the file and
/// listing every problem, all or nothing. Non-strict: loads what matches and returns the
/// rest in the report.
template <class T>
LoadReport read_state(const data::NpzFile& f, Module<T>& m, const LoadOptions& options = {});

/// Saves m's state to path atomically (data::NpzWriter): the previous file survives a
/// failed save. Throws DataError naming the path.
template <class T>
void save(const Module<T>& m, const std::string& path, const SaveOptions& options = {});
/// Loads a file written by save() or numpy.savez (read_state on data::NpzFile::open).
template <class T>
LoadReport load(Module<T>& m, const std::string& path, const LoadOptions& options = {});

/// @cond INTERNAL
#define XGRAD_NN_SERIALIZE_DECLARE(T)                                                          \
  extern template void write_state(data::NpzWriter&, const Module<T>&, const std::string&);    \
  extern template LoadReport read_state(const data::NpzFile&, Module<T>&, const LoadOptions&); \
  extern template void save(const Module<T>&, const std::string&, const SaveOptions&);         \
  extern template LoadReport load(Module<T>&, const std::string&, const LoadOptions&);
XGRAD_NN_SERIALIZE_DECLARE(float)
XGRAD_NN_SERIALIZE_DECLARE(double)
#undef XGRAD_NN_SERIALIZE_DECLARE
/// @endcond

}  // namespace xgrad::nn
