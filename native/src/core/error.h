// Errors for people: every user mistake becomes one of these and reaches
// Python as the matching exception, with the op, the shapes/dtypes and what
// was expected in the message.
#pragma once
#include <stdexcept>
#include <string>
#include <sstream>

namespace mnn {

struct ValueError : std::runtime_error { using std::runtime_error::runtime_error; };
struct TypeError : std::runtime_error { using std::runtime_error::runtime_error; };
struct IndexError : std::runtime_error { using std::runtime_error::runtime_error; };
struct MemoryError : std::runtime_error { using std::runtime_error::runtime_error; };  // an allocation failed

// fmt("a", 1, "b") -> "a1b"; used to build messages without iostream noise at call sites.
template <typename... Args>
std::string fmt(const Args&... args) {
    std::ostringstream os;
    (os << ... << args);
    return os.str();
}

}  // namespace mnn

#define MNN_CHECK_VALUE(cond, ...) do { if (!(cond)) throw ::mnn::ValueError(::mnn::fmt(__VA_ARGS__)); } while (0)
#define MNN_CHECK_TYPE(cond, ...) do { if (!(cond)) throw ::mnn::TypeError(::mnn::fmt(__VA_ARGS__)); } while (0)
