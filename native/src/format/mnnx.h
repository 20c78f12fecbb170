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

#include "graph/graph_def.h"

namespace mnn::mnnx {

constexpr uint32_t kVersion = 1;
struct ModelDef {
    std::string producer;
    std::vector<std::pair<std::string, std::string>> metadata;
    GraphDef graph;  // the model; control-flow bodies are graph attributes of its nodes
};

// Validates `m` (the same checks as loading) and writes it.
void save(const ModelDef& m, const std::string& path);
// Reads a file; raw-encoded constants share a read-only memory map of it.
ModelDef load(const std::string& path);
// Parses bytes in memory; `keep` owns them (constants may point into them).
ModelDef parse(const uint8_t* data, size_t size, std::shared_ptr<const void> keep);

}  // namespace mnn::mnnx
