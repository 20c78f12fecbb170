#include <cstring>
#include <unordered_set>

#include "backend/backend.h"
#include "graph/expr.h"

namespace mnn {

namespace {

class NullBackend final : public Backend {
public:
    explicit NullBackend(std::vector<std::string> ops) {
        for (const std::string& n : ops) ops_.insert(op_from_name(n));
    }
    const char* name() const override { return "null"; }

    bool supports(OpType op, const std::vector<TensorInfo>&) const override {
        if (!ops_.empty()) return ops_.count(op) > 0;
        Category c = op_def(op).category;
        return c == Category::Unary || c == Category::Binary || op == OpType::MatMul;
    }

    std::shared_ptr<Storage> allocate(size_t bytes) override {
        auto s = Storage::allocate(bytes);
        s->device = this;
        return s;
    }

    void upload(const Tensor& host, Tensor& dev) override {
        if (host.nbytes()) std::memcpy(dev.raw(), host.raw(), host.nbytes());
        stats_.bytes_uploaded += int64_t(host.nbytes());
    }

    void download(const Tensor& dev, Tensor& host) override {
        if (dev.nbytes()) std::memcpy(host.raw(), dev.raw(), dev.nbytes());
        stats_.bytes_downloaded += int64_t(dev.nbytes());
    }

    void run(OpType op, const Attrs& attrs, const std::vector<Tensor>& ins, std::vector<Tensor>& outs,
             const std::vector<TensorInfo>& infos) override {
        for (size_t i = 0; i < infos.size(); ++i)
            if (!outs[i].defined()) outs[i] = device_tensor(*this, infos[i]);
        run_node(op, attrs, ins, outs, infos);  // (the CPU's kernels: this device's memory is host memory)
        ++stats_.launches;
    }

    BackendStats stats() const {
        return {stats_.launches.load(), stats_.bytes_uploaded.load(), stats_.bytes_downloaded.load()};
    }

private:
    std::unordered_set<OpType> ops_;
    struct {
        std::atomic<int64_t> launches{0}, bytes_uploaded{0}, bytes_downloaded{0};
    } stats_;
};

}  // namespace

std::shared_ptr<Backend> make_null_backend(std::vector<std::string> ops) {
    return std::make_shared<NullBackend>(std::move(ops));
}

BackendStats backend_stats(const Backend& b) {
    if (auto* n = dynamic_cast<const NullBackend*>(&b)) return n->stats();
    return {};
}

Tensor device_tensor(Backend& b, const TensorInfo& info) {
    check_shape(info.shape, info.dtype, b.name());
    Tensor t;
    t.info = info;
    t.storage = b.allocate(size_t(info.numel()) * dtype_size(info.dtype));
    return t;
}

}  // namespace mnn
