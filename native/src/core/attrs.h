// Op attributes: typed values in the order of the op's schema (ops.def).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace mnn {

enum class AttrType : uint8_t { Int, Float, Bool, Ints, Floats, Str, DTypeT, Graph };

struct GraphDef;  // graph/graph_def.h: the body of a control-flow op
using GraphPtr = std::shared_ptr<const GraphDef>;

using AttrValue = std::variant<int64_t, double, std::vector<int64_t>, std::vector<double>, std::string, GraphPtr>;

struct AttrSpec {
    std::string name;
    AttrType type;
    bool has_default = false;
    AttrValue default_value;
};

// Values are stored positionally, one per schema entry; lookups by name walk
// the (short) schema.
enum class OpType : uint16_t;

struct Attrs {
    OpType op{};
    const std::vector<AttrSpec>* schema = nullptr;
    std::vector<AttrValue> values;
    const char* op_name = "";

    int index(const char* name) const {
        for (size_t i = 0; i < schema->size(); ++i)
            if ((*schema)[i].name == name) return int(i);
        throw ValueError(fmt(op_name, ": internal error, no attribute '", name, "'"));
    }
    int64_t i(const char* name) const { return std::get<int64_t>(values[index(name)]); }
    bool b(const char* name) const { return std::get<int64_t>(values[index(name)]) != 0; }
    double f(const char* name) const { return std::get<double>(values[index(name)]); }
    const std::vector<int64_t>& ints(const char* name) const { return std::get<std::vector<int64_t>>(values[index(name)]); }
    const std::vector<double>& floats(const char* name) const { return std::get<std::vector<double>>(values[index(name)]); }
    const std::string& s(const char* name) const { return std::get<std::string>(values[index(name)]); }
    DType dtype(const char* name) const { return DType(std::get<int64_t>(values[index(name)])); }
    const GraphDef& graph(const char* name) const {
        const GraphPtr& g = std::get<GraphPtr>(values[index(name)]);
        if (!g) throw ValueError(fmt(op_name, ": attribute '", name, "' has no graph"));
        return *g;
    }

};

}  // namespace mnn
