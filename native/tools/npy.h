// Reading and writing NumPy .npy files (format versions 1-3, C order) for the CLI.
#pragma once
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "mnn/runtime.h"

namespace mnnx_tools {

using mnn::runtime::Array;
using mnn::runtime::Error;

struct NpyType { const char* descr; const char* dtype; };
// Little-endian descriptors (and byte-sized ones, whose order mark is '|').
inline const NpyType kNpyTypes[] = {{"|b1", "bool"},  {"|i1", "int8"},   {"|u1", "uint8"},   {"<i4", "int32"},
                                    {"<i8", "int64"}, {"<f2", "float16"}, {"<f4", "float32"}, {"<f8", "float64"}};

// The value of `key` in the header dict text ("'descr': '<f4', ..."), up to its end.
inline std::string npy_field(const std::string& h, const std::string& key, const std::string& path) {
    size_t k = h.find("'" + key + "'");
    if (k == std::string::npos) throw Error(path + ": .npy header has no '" + key + "'");
    size_t c = h.find(':', k);
    if (c == std::string::npos) throw Error(path + ": malformed .npy header");
    return h.substr(c + 1);
}

inline Array read_npy(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error("cannot open '" + path + "'");
    char magic[8];
    if (!f.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) throw Error(path + ": not a .npy file");
    uint32_t hlen = 0;
    if (magic[6] == 1) {
        uint16_t h16;
        if (!f.read(reinterpret_cast<char*>(&h16), 2)) throw Error(path + ": truncated .npy header");
        hlen = h16;
    } else if (magic[6] == 2 || magic[6] == 3) {
        if (!f.read(reinterpret_cast<char*>(&hlen), 4)) throw Error(path + ": truncated .npy header");
    } else {
        throw Error(path + ": unsupported .npy version " + std::to_string(int(magic[6])));
    }
    if (hlen > (1u << 20)) throw Error(path + ": .npy header too long");
    std::string h(hlen, '\0');
    if (!f.read(&h[0], hlen)) throw Error(path + ": truncated .npy header");

    std::string d = npy_field(h, "descr", path);
    size_t q = d.find('\''), q2 = q == std::string::npos ? q : d.find('\'', q + 1);
    if (q2 == std::string::npos) throw Error(path + ": malformed descr");
    std::string descr = d.substr(q + 1, q2 - q - 1);
    if (descr.size() == 3 && descr[0] == '=') descr[0] = '<';
    Array a;
    for (const auto& t : kNpyTypes)
        if (descr == t.descr || (descr.size() == 3 && descr[0] == '<' && descr.substr(1) == std::string(t.descr).substr(1)))
            a.dtype = t.dtype;
    if (a.dtype.empty()) throw Error(path + ": unsupported .npy dtype '" + descr + "' (little-endian bool/int/float only)");
    if (npy_field(h, "fortran_order", path).find("True") < npy_field(h, "fortran_order", path).find(','))
        throw Error(path + ": Fortran-ordered .npy is not supported (save with np.ascontiguousarray)");
    std::string s = npy_field(h, "shape", path);
    size_t open = s.find('('), close = s.find(')');
    if (open == std::string::npos || close == std::string::npos || close < open) throw Error(path + ": malformed shape");
    std::string dims = s.substr(open + 1, close - open - 1);
    size_t pos = 0;
    while (pos < dims.size()) {
        while (pos < dims.size() && (dims[pos] == ' ' || dims[pos] == ',')) ++pos;
        if (pos >= dims.size()) break;
        size_t end = pos;
        while (end < dims.size() && dims[end] >= '0' && dims[end] <= '9') ++end;
        if (end == pos || end - pos > 15) throw Error(path + ": malformed shape '" + dims + "'");
        a.shape.push_back(std::stoll(dims.substr(pos, end - pos)));
        pos = end;
    }
    Array z = Array::zeros(a.dtype, a.shape);  // validates the size
    if (!f.read(static_cast<char*>(z.data), std::streamsize(z.nbytes()))) throw Error(path + ": truncated .npy data");
    return z;
}

inline void write_npy(const std::string& path, const Array& a) {
    std::string descr;
    for (const auto& t : kNpyTypes)
        if (a.dtype == t.dtype) descr = t.descr;
    if (descr.empty()) throw Error("cannot write " + a.dtype + " as .npy");
    std::string shape = "(";
    for (size_t i = 0; i < a.shape.size(); ++i) shape += std::to_string(a.shape[i]) + (a.shape.size() == 1 || i + 1 < a.shape.size() ? "," : "");
    shape += ")";
    std::string h = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
    size_t total = 10 + h.size() + 1;
    h.append((64 - total % 64) % 64, ' ');
    h += '\n';
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) throw Error("cannot write '" + path + "'");
    uint16_t hlen = uint16_t(h.size());
    f.write("\x93NUMPY\x01\x00", 8);
    f.write(reinterpret_cast<const char*>(&hlen), 2);
    f.write(h.data(), std::streamsize(h.size()));
    f.write(static_cast<const char*>(a.data), std::streamsize(a.nbytes()));
    if (!f) throw Error("writing '" + path + "' failed");
}

}  // namespace mnnx_tools
