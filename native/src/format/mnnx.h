// The .mnnx model format (docs/format.md): a graph of op-table primitives with
// named inputs/outputs, constants stored 64-byte aligned (so they can be
// memory-mapped) as float32, float16 or int8 with scales, and producer metadata.
//
// `load`/`parse` validate every count, offset, size, dtype, op and attribute
// before anything uses them: a malformed or hostile file raises mnn::ValueError
// ("mnnx: ..."), it never crashes.  Shapes of intermediate values are checked
// again by the op shape rules when the graph runs.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/attrs.h"
#include "core/registry.h"
#include "core/tensor.h"

namespace mnn::mnnx {

constexpr uint32_t kVersion = 1;
constexpr int64_t kDynamic = -1;  // a dimension whose size is given at run time

// How a constant's values are stored in the file (it is decoded to its value's dtype at load).
enum class Encoding : uint8_t { Raw = 0, Float16 = 1, Int8 = 2 };

struct ValueDef {
    std::string name;
    DType dtype = DType::Float32;
    std::vector<int64_t> shape;  // kDynamic for dynamic dims
};

struct ConstDef {
    int value = 0;
    Tensor tensor;                      // decoded: the value's dtype and shape
    Encoding encoding = Encoding::Raw;  // how `save` stores it
};

struct NodeDef {
    OpType op{};
    Attrs attrs;
    std::vector<int> inputs, outputs;  // value indices
};

struct GraphDef {
    std::vector<ValueDef> values;
    std::vector<NodeDef> nodes;  // in execution order
    std::vector<int> inputs, outputs;
    std::vector<ConstDef> constants;
    std::vector<std::pair<int, int>> states;  // (constant value, output value holding its next value)
};

struct ModelDef {
    std::string producer;
    std::vector<std::pair<std::string, std::string>> metadata;
    std::vector<GraphDef> graphs;  // graphs[0] is the model (version 1 has no sub-graphs)
};

// Validates `m` (the same checks as loading) and writes it.
void save(const ModelDef& m, const std::string& path);
// Reads a file; raw-encoded constants share a read-only memory map of it.
ModelDef load(const std::string& path);
// Parses bytes in memory; `keep` owns them (constants may point into them).
ModelDef parse(const uint8_t* data, size_t size, std::shared_ptr<const void> keep);

// Checks a graph's structure: indices in range, values defined once before use,
// arities, constants and states consistent.  Throws ValueError("mnnx: ...").
void validate(const GraphDef& g);

}  // namespace mnn::mnnx
