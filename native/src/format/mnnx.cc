// .mnnx writer and reader, side by side so the layout lives in one file
// (docs/format.md describes it for people).  Little-endian throughout.
#include "format/mnnx.h"

#include "graph/expr.h"  // make_attrs

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define MNNX_MMAP 1
#endif

namespace mnn::mnnx {

namespace {

constexpr char kMagic[4] = {'M', 'N', 'N', 'X'};
constexpr uint64_t kHeaderBytes = 64;
constexpr uint64_t kAlign = 64;     // constants start at multiples of this (relative to the data section)
constexpr uint64_t kTailPad = 64;   // bytes after every constant inside the data section (SIMD over-reads)
constexpr uint32_t kMaxString = 1u << 16;
constexpr uint32_t kMaxRank = 16;

// On-disk codes, fixed by the format (independent of the enums' order).
constexpr DType kDTypes[] = {DType::Bool, DType::Int8, DType::UInt8, DType::Int32, DType::Int64,
                             DType::Float16, DType::BFloat16, DType::Float32, DType::Float64};
constexpr AttrType kAttrTypes[] = {AttrType::Int, AttrType::Float, AttrType::Bool, AttrType::Ints,
                                   AttrType::Floats, AttrType::Str, AttrType::DTypeT, AttrType::Graph};
// Bounds on control-flow bodies: nesting depth, and the graphs counted with every reference
// (shape inference visits each), so a hostile file cannot make loading or inference explode.
constexpr int kMaxGraphDepth = 32;
constexpr uint64_t kMaxExpandedGraphs = 4096;

// The graphs of a model in file order (pre-order: a body comes after the graph that uses
// it) with, per graph, the indices of the bodies its nodes reference, in node/attribute order.
struct GraphEntry {
    const GraphDef* g;
    std::vector<uint32_t> children;
};

uint32_t collect_graphs(const GraphDef& g, std::vector<GraphEntry>& list, int depth) {
    MNN_CHECK_VALUE(depth <= kMaxGraphDepth, "mnnx: control flow nested deeper than ", kMaxGraphDepth, " levels");
    MNN_CHECK_VALUE(list.size() < kMaxExpandedGraphs, "mnnx: more than ", kMaxExpandedGraphs, " graph bodies");
    uint32_t me = uint32_t(list.size());
    list.push_back({&g, {}});
    for (const NodeDef& n : g.nodes)
        for (const AttrValue& v : n.attrs.values)
            if (const GraphPtr* p = std::get_if<GraphPtr>(&v)) {
                MNN_CHECK_VALUE(*p != nullptr, "mnnx: a graph attribute of ", op_def(n.op).name, " is empty");
                uint32_t c = collect_graphs(**p, list, depth + 1);
                list[me].children.push_back(c);
            }
    return me;
}

uint8_t dtype_code(DType t) {
    for (uint8_t i = 0; i < std::size(kDTypes); ++i)
        if (kDTypes[i] == t) return i;
    throw ValueError("mnnx: dtype without a file code");
}
DType dtype_of_code(uint8_t c, const std::string& where) {
    MNN_CHECK_VALUE(c < std::size(kDTypes), "mnnx: ", where, ": unknown dtype code ", int(c));
    return kDTypes[c];
}
uint8_t attr_code(AttrType t) {
    for (uint8_t i = 0; i < std::size(kAttrTypes); ++i)
        if (kAttrTypes[i] == t) return i;
    throw ValueError("mnnx: attribute type without a file code");
}

uint64_t checked_add(uint64_t a, uint64_t b, const char* what) {
    MNN_CHECK_VALUE(a <= std::numeric_limits<uint64_t>::max() - b, "mnnx: ", what, " overflows");
    return a + b;
}

size_t encoded_bytes(const ConstDef& c) {
    int64_t n = c.tensor.numel();
    switch (c.encoding) {
        case Encoding::Raw: return c.tensor.nbytes();
        case Encoding::Float16: return size_t(n) * 2;
        case Encoding::Int8: return size_t(n);
    }
    return 0;
}

// ---- writing -----------------------------------------------------------------

struct Writer {
    std::string out;
    template <typename T> void pod(T v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); }
    void u8(uint8_t v) { pod(v); }
    void u32(uint64_t v) {
        MNN_CHECK_VALUE(v <= std::numeric_limits<uint32_t>::max(), "mnnx: count ", v, " too large for the format");
        pod(uint32_t(v));
    }
    void str(const std::string& s) {
        MNN_CHECK_VALUE(s.size() < kMaxString, "mnnx: string of ", s.size(), " bytes is too long");
        u32(s.size());
        out += s;
    }
    void ids(const std::vector<int>& v) { u32(v.size()); for (int i : v) u32(uint64_t(i)); }
};

void write_attr(Writer& w, const AttrSpec& spec, const AttrValue& v, const uint32_t*& child) {
    w.str(spec.name);
    w.u8(attr_code(spec.type));
    switch (spec.type) {
        case AttrType::Int: case AttrType::Bool: case AttrType::DTypeT: w.pod(std::get<int64_t>(v)); break;
        case AttrType::Float: w.pod(std::get<double>(v)); break;
        case AttrType::Ints: { auto& l = std::get<std::vector<int64_t>>(v); w.u32(l.size()); for (auto x : l) w.pod(x); break; }
        case AttrType::Floats: { auto& l = std::get<std::vector<double>>(v); w.u32(l.size()); for (auto x : l) w.pod(x); break; }
        case AttrType::Str: w.str(std::get<std::string>(v)); break;
        case AttrType::Graph: w.u32(*child++); break;
    }
}

// Per-output-channel (axis 0) symmetric int8 scales of a float32 tensor.
std::vector<float> int8_scales(const Tensor& t) {
    int64_t rows = t.ndim() ? t.shape()[0] : 1, n = t.numel(), per = rows ? n / std::max<int64_t>(rows, 1) : 0;
    std::vector<float> s(size_t(std::max<int64_t>(rows, 0)));
    const float* p = t.data<float>();
    for (int64_t r = 0; r < rows; ++r) {
        float m = 0;
        for (int64_t i = 0; i < per; ++i) m = std::max(m, std::fabs(p[r * per + i]));
        s[size_t(r)] = m > 0 && std::isfinite(m) ? m / 127.f : 1.f;
    }
    return s;
}

void encode(const ConstDef& c, const std::vector<float>& scales, char* dst) {
    const Tensor& t = c.tensor;
    if (c.encoding == Encoding::Raw) { std::memcpy(dst, t.raw(), t.nbytes()); return; }
    const float* p = t.data<float>();
    int64_t n = t.numel();
    if (c.encoding == Encoding::Float16) {
        for (int64_t i = 0; i < n; ++i) { uint16_t h = float_to_half(p[i]); std::memcpy(dst + 2 * i, &h, 2); }
        return;
    }
    int64_t rows = int64_t(scales.size()), per = rows ? n / rows : 0;
    for (int64_t i = 0; i < n; ++i) {
        float q = std::nearbyint(p[i] / scales[size_t(per ? i / per : 0)]);
        dst[i] = char(int8_t(std::clamp(q, -127.f, 127.f)));
    }
}

void write_graph(Writer& w, const GraphEntry& e, std::vector<std::pair<const ConstDef*, uint64_t>>& blobs,
                 std::vector<std::vector<float>>& all_scales, uint64_t& data_end) {
    const GraphDef& g = *e.g;
    const uint32_t* child = e.children.data();
    w.u32(g.values.size());
    for (const ValueDef& v : g.values) {
        w.str(v.name);
        w.u8(dtype_code(v.dtype));
        w.u32(v.shape.size());
        for (int64_t d : v.shape) w.pod(d);
    }
    w.ids(g.inputs);
    w.ids(g.outputs);
    w.u32(g.constants.size());
    for (const ConstDef& c : g.constants) {
        w.u32(uint64_t(c.value));
        w.u8(uint8_t(c.encoding));
        uint64_t off = (data_end + kAlign - 1) / kAlign * kAlign, n = encoded_bytes(c);
        w.pod(off);
        w.pod(n);
        blobs.emplace_back(&c, off);
        data_end = off + n + kTailPad;
        all_scales.emplace_back(c.encoding == Encoding::Int8 ? int8_scales(c.tensor) : std::vector<float>{});
        if (c.encoding == Encoding::Int8) {
            w.u32(all_scales.back().size());
            for (float s : all_scales.back()) w.pod(s);
        }
    }
    w.u32(g.states.size());
    for (auto [s, o] : g.states) { w.u32(uint64_t(s)); w.u32(uint64_t(o)); }
    w.u32(g.nodes.size());
    for (const NodeDef& n : g.nodes) {
        const OpDef& d = op_def(n.op);
        w.str(d.name);
        w.u32(d.schema.size());
        for (size_t i = 0; i < d.schema.size(); ++i) write_attr(w, d.schema[i], n.attrs.values[i], child);
        w.ids(n.inputs);
        w.ids(n.outputs);
    }
}

// ---- reading -------------------------------------------------------------------

struct Reader {
    const uint8_t* p;
    size_t size, pos = 0;
    size_t left() const { return size - pos; }
    void need(size_t n, const char* what) {
        MNN_CHECK_VALUE(n <= left(), "mnnx: file ends inside ", what, " (needs ", n, " bytes at offset ", pos, ", has ", left(), ")");
    }
    template <typename T> T pod(const char* what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, p + pos, sizeof v);
        pos += sizeof v;
        return v;
    }
    // A count of items each at least `min_item` bytes: bounded by what is left, so a
    // hostile count cannot make us allocate more than the file could describe.
    uint32_t count(const char* what, size_t min_item) {
        uint32_t n = pod<uint32_t>(what);
        MNN_CHECK_VALUE(uint64_t(n) * min_item <= left(), "mnnx: ", what, " count ", n, " exceeds the file (",
                        left(), " bytes left)");
        return n;
    }
    std::string str(const char* what) {
        uint32_t n = pod<uint32_t>(what);
        MNN_CHECK_VALUE(n < kMaxString, "mnnx: ", what, " string length ", n, " is too long");
        need(n, what);
        std::string s(reinterpret_cast<const char*>(p + pos), n);
        pos += n;
        return s;
    }
    int index(const char* what, size_t limit) {
        uint32_t i = pod<uint32_t>(what);
        MNN_CHECK_VALUE(i < limit, "mnnx: ", what, " index ", i, " out of range (", limit, " values)");
        return int(i);
    }
    std::vector<int> ids(const char* what, size_t limit) {
        std::vector<int> v(count(what, 4));
        for (int& i : v) i = index(what, limit);
        return v;
    }
};

// A graph attribute read before the graph it names: resolved once every graph is read.
struct PendingGraph {
    uint32_t graph;  // the graph whose node holds the attribute
    size_t node, slot;
    uint32_t target;
};

AttrValue read_attr_value(Reader& r, AttrType t, const std::string& where) {
    switch (t) {
        case AttrType::Int: case AttrType::Bool: return r.pod<int64_t>("attribute");
        case AttrType::DTypeT: {
            int64_t c = r.pod<int64_t>("attribute");
            MNN_CHECK_VALUE(c >= 0 && c < kNumDTypes, "mnnx: ", where, ": invalid dtype value ", c);
            return c;
        }
        case AttrType::Float: return r.pod<double>("attribute");
        case AttrType::Ints: {
            std::vector<int64_t> l(r.count("attribute list", 8));
            for (auto& x : l) x = r.pod<int64_t>("attribute list");
            return l;
        }
        case AttrType::Floats: {
            std::vector<double> l(r.count("attribute list", 8));
            for (auto& x : l) x = r.pod<double>("attribute list");
            return l;
        }
        case AttrType::Str: return r.str("attribute");
        case AttrType::Graph: return int64_t(r.pod<uint32_t>("graph attribute"));  // an index, resolved later
    }
    throw ValueError("mnnx: bad attribute type");
}

NodeDef read_node(Reader& r, size_t n_values, size_t index, uint32_t graph, std::vector<PendingGraph>& pending) {
    NodeDef n;
    std::string name = r.str("op name");
    try {
        n.op = op_from_name(name);
    } catch (const ValueError&) {
        throw ValueError(fmt("mnnx: node ", index, " has unknown op '", name, "'"));
    }
    const OpDef& d = op_def(n.op);
    std::string where = fmt("node ", index, " (", d.name, ")");
    std::vector<AttrValue> values(d.schema.size());
    std::vector<bool> given(d.schema.size(), false);
    uint32_t n_attrs = r.count("attributes", 9);
    for (uint32_t k = 0; k < n_attrs; ++k) {
        std::string an = r.str("attribute name");
        uint8_t tc = r.pod<uint8_t>("attribute type");
        size_t s = 0;
        while (s < d.schema.size() && d.schema[s].name != an) ++s;
        MNN_CHECK_VALUE(s < d.schema.size(), "mnnx: ", where, ": unknown attribute '", an, "'");
        MNN_CHECK_VALUE(!given[s], "mnnx: ", where, ": attribute '", an, "' given twice");
        MNN_CHECK_VALUE(tc < std::size(kAttrTypes) && kAttrTypes[tc] == d.schema[s].type, "mnnx: ", where,
                        ": attribute '", an, "' has the wrong type (code ", int(tc), ")");
        values[s] = read_attr_value(r, d.schema[s].type, where);
        if (d.schema[s].type == AttrType::Graph) {
            pending.push_back({graph, index, s, uint32_t(std::get<int64_t>(values[s]))});
            values[s] = GraphPtr();
        }
        given[s] = true;
    }
    for (size_t s = 0; s < d.schema.size(); ++s) {
        if (given[s]) continue;
        MNN_CHECK_VALUE(d.schema[s].has_default, "mnnx: ", where, ": missing attribute '", d.schema[s].name, "'");
        values[s] = d.schema[s].default_value;
    }
    n.attrs = make_attrs(n.op, std::move(values));
    n.inputs = r.ids("node inputs", n_values);
    n.outputs = r.ids("node outputs", n_values);
    return n;
}

// Decodes one constant into a tensor of its value's dtype and shape.  Raw
// float/int data of the value's dtype borrows the mapped bytes (no copy).
Tensor decode(const uint8_t* data, uint64_t bytes, const ValueDef& v, Encoding enc, const std::vector<float>& scales,
              const std::shared_ptr<const void>& keep, bool borrow) {
    Shape shape(v.shape.begin(), v.shape.end());
    TensorInfo info{v.dtype, shape};
    if (enc == Encoding::Raw && borrow) {
        Tensor t;
        t.info = info;
        auto s = std::make_shared<Storage>();
        s->data = const_cast<uint8_t*>(data);
        s->bytes = bytes;
        s->release_ctx = new std::shared_ptr<const void>(keep);
        s->release = [](void*, void* ctx) { delete static_cast<std::shared_ptr<const void>*>(ctx); };
        t.storage = std::move(s);
        return t;
    }
    Tensor t(info);
    int64_t n = t.numel();
    if (enc == Encoding::Raw) {
        std::memcpy(t.raw(), data, bytes);
    } else if (enc == Encoding::Float16) {
        float* o = t.data<float>();
        for (int64_t i = 0; i < n; ++i) { uint16_t h; std::memcpy(&h, data + 2 * i, 2); o[i] = half_to_float(h); }
    } else {
        float* o = t.data<float>();
        int64_t per = scales.empty() ? 0 : n / int64_t(scales.size());
        for (int64_t i = 0; i < n; ++i) o[i] = float(int8_t(data[i])) * scales[size_t(per ? i / per : 0)];
    }
    return t;
}

GraphDef read_graph(Reader& r, const uint8_t* data, uint64_t data_bytes, const std::shared_ptr<const void>& keep,
                    bool borrow, uint32_t index, std::vector<PendingGraph>& pending) {
    GraphDef g;
    g.values.resize(r.count("values", 9));
    for (size_t i = 0; i < g.values.size(); ++i) {
        ValueDef& v = g.values[i];
        v.name = r.str("value name");
        v.dtype = dtype_of_code(r.pod<uint8_t>("value dtype"), fmt("value ", i));
        uint32_t rank = r.count("value rank", 8);
        MNN_CHECK_VALUE(rank <= kMaxRank, "mnnx: value ", i, " has rank ", rank, " (at most ", kMaxRank, ")");
        v.shape.resize(rank);
        for (auto& d : v.shape) {
            d = r.pod<int64_t>("value shape");
            MNN_CHECK_VALUE(d >= kDynamicDim, "mnnx: value ", i, " ('", v.name, "') has dimension ", d);
        }
    }
    size_t nv = g.values.size();
    g.inputs = r.ids("graph inputs", nv);
    g.outputs = r.ids("graph outputs", nv);
    uint32_t nc = r.count("constants", 21);
    for (uint32_t k = 0; k < nc; ++k) {
        ConstDef c;
        c.value = r.index("constant value", nv);
        uint8_t enc = r.pod<uint8_t>("constant encoding");
        MNN_CHECK_VALUE(enc <= uint8_t(Encoding::Int8), "mnnx: constant ", k, " has unknown encoding ", int(enc));
        c.encoding = Encoding(enc);
        uint64_t off = r.pod<uint64_t>("constant offset"), bytes = r.pod<uint64_t>("constant size");
        std::vector<float> scales;
        if (c.encoding == Encoding::Int8) {
            scales.resize(r.count("int8 scales", 4));
            for (float& s : scales) {
                s = r.pod<float>("int8 scales");
                MNN_CHECK_VALUE(std::isfinite(s), "mnnx: constant ", k, " has a non-finite int8 scale");
            }
        }
        const ValueDef& v = g.values[size_t(c.value)];
        std::string where = fmt("constant '", v.name, "'");
        Shape shape;
        for (int64_t d : v.shape) {
            MNN_CHECK_VALUE(d != kDynamicDim, "mnnx: ", where, " has a dynamic dimension");
            shape.push_back(d);
        }
        check_shape(shape, v.dtype, "mnnx constant");
        int64_t n = numel(shape);
        MNN_CHECK_VALUE(c.encoding == Encoding::Raw || v.dtype == DType::Float32, "mnnx: ", where,
                        " is float16/int8-encoded but its dtype is ", dtype_name(v.dtype), " (expected float32)");
        uint64_t expect = c.encoding == Encoding::Raw ? uint64_t(n) * dtype_size(v.dtype)
                          : c.encoding == Encoding::Float16 ? uint64_t(n) * 2 : uint64_t(n);
        MNN_CHECK_VALUE(bytes == expect, "mnnx: ", where, " stores ", bytes, " bytes; its dtype and shape need ", expect);
        MNN_CHECK_VALUE(off % kAlign == 0, "mnnx: ", where, " offset ", off, " is not 64-byte aligned");
        MNN_CHECK_VALUE(checked_add(checked_add(off, bytes, "constant extent"), kTailPad, "constant extent") <= data_bytes,
                        "mnnx: ", where, " (offset ", off, ", ", bytes, " bytes) lies outside the data section (",
                        data_bytes, " bytes)");
        if (c.encoding == Encoding::Int8) {
            int64_t rows = shape.empty() ? 1 : shape[0];
            MNN_CHECK_VALUE(int64_t(scales.size()) == rows || scales.size() == 1, "mnnx: ", where, " has ",
                            scales.size(), " int8 scales; expected 1 or ", rows);
        }
        c.tensor = decode(data + off, bytes, v, c.encoding, scales, keep, borrow);
        g.constants.push_back(std::move(c));
    }
    uint32_t ns = r.count("states", 8);
    for (uint32_t k = 0; k < ns; ++k) {
        int s = r.index("state value", nv), o = r.index("state output", nv);
        g.states.emplace_back(s, o);
    }
    g.nodes.resize(r.count("nodes", 16));
    for (size_t i = 0; i < g.nodes.size(); ++i) g.nodes[i] = read_node(r, nv, i, index, pending);
    return g;
}

}  // namespace

void save(const ModelDef& m, const std::string& path) {
    std::vector<GraphEntry> graphs;
    collect_graphs(m.graph, graphs, 0);
    for (const GraphEntry& e : graphs) {
        validate(*e.g, "mnnx");
        MNN_CHECK_VALUE(e.g == &m.graph || e.g->states.empty(), "mnnx: only the model's graph may have states");
        for (const ConstDef& c : e.g->constants)
            MNN_CHECK_VALUE(c.encoding == Encoding::Raw || c.tensor.dtype() == DType::Float32,
                            "mnnx: only float32 constants can be stored as float16 or int8");
    }
    Writer w;
    w.out.assign(kHeaderBytes, '\0');
    w.str(m.producer);
    w.u32(m.metadata.size());
    for (auto& [k, v] : m.metadata) { w.str(k); w.str(v); }
    w.u32(graphs.size());
    std::vector<std::pair<const ConstDef*, uint64_t>> blobs;
    std::vector<std::vector<float>> scales;
    uint64_t data_bytes = 0;
    for (const GraphEntry& e : graphs) write_graph(w, e, blobs, scales, data_bytes);
    uint64_t graph_bytes = w.out.size() - kHeaderBytes;
    uint64_t data_offset = (w.out.size() + kAlign - 1) / kAlign * kAlign;
    uint64_t file_bytes = data_offset + data_bytes;
    std::string& o = w.out;
    o.resize(file_bytes, '\0');
    for (size_t i = 0; i < blobs.size(); ++i) encode(*blobs[i].first, scales[i], &o[data_offset + blobs[i].second]);
    std::memcpy(&o[0], kMagic, 4);
    uint32_t version = kVersion, header = uint32_t(kHeaderBytes);
    uint64_t fields[] = {kHeaderBytes, graph_bytes, data_offset, data_bytes, file_bytes};
    std::memcpy(&o[4], &version, 4);
    std::memcpy(&o[8], &header, 4);
    std::memcpy(&o[16], fields, sizeof fields);
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    MNN_CHECK_VALUE(f.good(), "mnnx: cannot open '", path, "' for writing");
    f.write(o.data(), std::streamsize(o.size()));
    MNN_CHECK_VALUE(f.good(), "mnnx: writing '", path, "' failed");
}

ModelDef parse(const uint8_t* data, size_t size, std::shared_ptr<const void> keep) {
    MNN_CHECK_VALUE(size >= kHeaderBytes && std::memcmp(data, kMagic, 4) == 0,
                    "mnnx: not an .mnnx file (bad magic or shorter than its header)");
    uint32_t version, header;
    uint64_t f[5];
    std::memcpy(&version, data + 4, 4);
    std::memcpy(&header, data + 8, 4);
    std::memcpy(f, data + 16, sizeof f);
    auto [graph_offset, graph_bytes, data_offset, data_bytes, file_bytes] = std::tuple(f[0], f[1], f[2], f[3], f[4]);
    MNN_CHECK_VALUE(version >= 1 && version <= kVersion, "mnnx: file version ", version,
                    " is not supported (this reader knows versions 1..", kVersion, ")");
    MNN_CHECK_VALUE(header == kHeaderBytes, "mnnx: header size ", header, " (expected ", kHeaderBytes, ")");
    MNN_CHECK_VALUE(file_bytes == size, "mnnx: the header says ", file_bytes, " bytes but the file has ", size,
                    " (truncated or padded)");
    MNN_CHECK_VALUE(graph_offset >= kHeaderBytes && checked_add(graph_offset, graph_bytes, "graph section") <= data_offset &&
                    data_offset % kAlign == 0 && checked_add(data_offset, data_bytes, "data section") <= size,
                    "mnnx: section offsets are inconsistent (graph ", graph_offset, "+", graph_bytes, ", data ",
                    data_offset, "+", data_bytes, ", file ", size, ")");
    Reader r{data + graph_offset, size_t(graph_bytes)};
    ModelDef m;
    m.producer = r.str("producer");
    uint32_t nm = r.count("metadata", 8);
    for (uint32_t i = 0; i < nm; ++i) {
        std::string k = r.str("metadata key");
        m.metadata.emplace_back(std::move(k), r.str("metadata value"));
    }
    uint32_t ng = r.count("graphs", 20);
    MNN_CHECK_VALUE(ng >= 1 && ng <= kMaxExpandedGraphs, "mnnx: the file holds ", ng, " graphs (1 to ",
                    kMaxExpandedGraphs, ")");
    // Raw constants borrow the bytes when they are aligned for their dtype (always, for files we write).
    bool borrow = reinterpret_cast<uintptr_t>(data + data_offset) % kAlign == 0;
    std::vector<GraphDef> graphs;
    std::vector<PendingGraph> pending;
    for (uint32_t i = 0; i < ng; ++i) graphs.push_back(read_graph(r, data + data_offset, data_bytes, keep, borrow, i, pending));
    MNN_CHECK_VALUE(r.left() == 0, "mnnx: ", r.left(), " unread bytes at the end of the graph section");
    // Bodies come after the graphs that use them, so resolving from the last graph to the first
    // finds every body complete (and no graph can contain itself).
    std::vector<int> depth(ng, 0);
    std::vector<uint64_t> expanded(ng, 1);
    for (const PendingGraph& p : pending) {
        MNN_CHECK_VALUE(p.target > p.graph && p.target < ng, "mnnx: graph ", p.graph, " node ", p.node,
                        " names body graph ", p.target, " (must come after it, and the file has ", ng, ")");
        depth[p.target] = std::max(depth[p.target], depth[p.graph] + 1);  // (pending is in graph order)
        MNN_CHECK_VALUE(depth[p.target] <= kMaxGraphDepth, "mnnx: control flow nested deeper than ", kMaxGraphDepth);
    }
    std::vector<GraphPtr> resolved(ng);
    for (uint32_t gi = ng; gi-- > 0;) {
        for (const PendingGraph& p : pending)
            if (p.graph == gi) {
                graphs[gi].nodes[p.node].attrs.values[p.slot] = resolved[p.target];
                expanded[gi] += expanded[p.target];
                MNN_CHECK_VALUE(expanded[gi] <= kMaxExpandedGraphs, "mnnx: control-flow bodies expand to more than ",
                                kMaxExpandedGraphs, " graphs");
            }
        validate(graphs[gi], "mnnx");
        MNN_CHECK_VALUE(gi == 0 || graphs[gi].states.empty(), "mnnx: only the model's graph (graph 0) may have states");
        if (gi > 0) resolved[gi] = std::make_shared<const GraphDef>(std::move(graphs[gi]));
    }
    m.graph = std::move(graphs[0]);
    return m;
}

ModelDef load(const std::string& path) {
#ifdef MNNX_MMAP
    int fd = ::open(path.c_str(), O_RDONLY);
    MNN_CHECK_VALUE(fd >= 0, "mnnx: cannot open '", path, "'");
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw ValueError(fmt("mnnx: '", path, "' is not a regular file"));
    }
    size_t size = size_t(st.st_size);
    if (size == 0) { ::close(fd); throw ValueError(fmt("mnnx: '", path, "' is empty")); }
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    MNN_CHECK_VALUE(p != MAP_FAILED, "mnnx: cannot map '", path, "'");
    std::shared_ptr<const void> keep(p, [size](const void* q) { ::munmap(const_cast<void*>(q), size); });
    return parse(static_cast<const uint8_t*>(p), size, keep);
#else
    std::ifstream f(path, std::ios::binary);
    MNN_CHECK_VALUE(f.good(), "mnnx: cannot open '", path, "'");
    auto buf = std::make_shared<std::string>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return parse(reinterpret_cast<const uint8_t*>(buf->data()), buf->size(), buf);
#endif
}

}  // namespace mnn::mnnx
