// SmallVector: a std::vector-like container with inline room for N elements,
// used for shapes and strides so that per-op bookkeeping does not touch the
// heap (eager per-op overhead is dominated by allocations otherwise).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <type_traits>
#include <vector>

namespace mnn {

template <typename T, size_t N>
class SmallVector {
    static_assert(std::is_trivially_copyable_v<T>, "SmallVector holds trivially copyable values");

public:
    using value_type = T;
    using size_type = size_t;
    using difference_type = std::ptrdiff_t;
    using iterator = T*;
    using const_iterator = const T*;
    using reference = T&;
    using const_reference = const T&;
    using reverse_iterator = std::reverse_iterator<iterator>;
    using const_reverse_iterator = std::reverse_iterator<const_iterator>;

    SmallVector() = default;
    explicit SmallVector(size_t n, const T& v = T()) { assign(n, v); }
    SmallVector(std::initializer_list<T> il) { assign(il.begin(), il.end()); }
    template <typename It, typename = std::enable_if_t<!std::is_integral_v<It>>>
    SmallVector(It b, It e) { assign(b, e); }
    SmallVector(const std::vector<T>& v) { assign(v.begin(), v.end()); }  // NOLINT: implicit on purpose
    SmallVector(const SmallVector& o) { assign(o.begin(), o.end()); }
    SmallVector(SmallVector&& o) noexcept { move_from(o); }
    ~SmallVector() { release(); }

    SmallVector& operator=(const SmallVector& o) {
        if (this != &o) assign(o.begin(), o.end());
        return *this;
    }
    SmallVector& operator=(SmallVector&& o) noexcept {
        if (this != &o) { release(); move_from(o); }
        return *this;
    }
    SmallVector& operator=(std::initializer_list<T> il) { assign(il.begin(), il.end()); return *this; }
    SmallVector& operator=(const std::vector<T>& v) { assign(v.begin(), v.end()); return *this; }
    operator std::vector<T>() const { return std::vector<T>(begin(), end()); }  // NOLINT

    template <typename It, typename = std::enable_if_t<!std::is_integral_v<It>>>
    void assign(It b, It e) {
        size_t n = size_t(std::distance(b, e));
        size_ = 0;
        reserve(n);
        std::copy(b, e, data_);
        size_ = n;
    }
    void assign(size_t n, const T& v) {
        size_ = 0;
        reserve(n);
        std::fill(data_, data_ + n, v);
        size_ = n;
    }

    T* data() { return data_; }
    const T* data() const { return data_; }
    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    size_t capacity() const { return cap_; }
    T& operator[](size_t i) { return data_[i]; }
    const T& operator[](size_t i) const { return data_[i]; }
    T& at(size_t i) { return data_[i]; }
    const T& at(size_t i) const { return data_[i]; }
    T& front() { return data_[0]; }
    const T& front() const { return data_[0]; }
    T& back() { return data_[size_ - 1]; }
    const T& back() const { return data_[size_ - 1]; }
    iterator begin() { return data_; }
    iterator end() { return data_ + size_; }
    const_iterator begin() const { return data_; }
    const_iterator end() const { return data_ + size_; }
    const_iterator cbegin() const { return data_; }
    const_iterator cend() const { return data_ + size_; }
    reverse_iterator rbegin() { return reverse_iterator(end()); }
    reverse_iterator rend() { return reverse_iterator(begin()); }
    const_reverse_iterator rbegin() const { return const_reverse_iterator(end()); }
    const_reverse_iterator rend() const { return const_reverse_iterator(begin()); }

    void reserve(size_t n) {
        if (n <= cap_) return;
        size_t cap = std::max(n, cap_ * 2);
        T* p = new T[cap];
        std::copy(data_, data_ + size_, p);
        if (data_ != inline_) delete[] data_;
        data_ = p;
        cap_ = cap;
    }
    void resize(size_t n, const T& v = T()) {
        reserve(n);
        if (n > size_) std::fill(data_ + size_, data_ + n, v);
        size_ = n;
    }
    void clear() { size_ = 0; }
    void push_back(const T& v) {
        if (size_ == cap_) { T copy = v; reserve(size_ + 1); data_[size_++] = copy; return; }
        data_[size_++] = v;
    }
    template <typename... A>
    T& emplace_back(A&&... a) { push_back(T(std::forward<A>(a)...)); return back(); }
    void pop_back() { --size_; }
    iterator insert(const_iterator pos, const T& v) { return insert(pos, size_t(1), v); }
    iterator insert(const_iterator pos, size_t n, const T& v) {
        size_t i = size_t(pos - data_);
        T copy = v;
        reserve(size_ + n);
        std::move_backward(data_ + i, data_ + size_, data_ + size_ + n);
        std::fill(data_ + i, data_ + i + n, copy);
        size_ += n;
        return data_ + i;
    }
    template <typename It, typename = std::enable_if_t<!std::is_integral_v<It>>>
    iterator insert(const_iterator pos, It b, It e) {
        size_t i = size_t(pos - data_), n = size_t(std::distance(b, e));
        SmallVector tmp(b, e);  // the range may alias *this
        reserve(size_ + n);
        std::move_backward(data_ + i, data_ + size_, data_ + size_ + n);
        std::copy(tmp.begin(), tmp.end(), data_ + i);
        size_ += n;
        return data_ + i;
    }
    iterator erase(const_iterator pos) { return erase(pos, pos + 1); }
    iterator erase(const_iterator b, const_iterator e) {
        size_t i = size_t(b - data_), n = size_t(e - b);
        std::move(data_ + i + n, data_ + size_, data_ + i);
        size_ -= n;
        return data_ + i;
    }

    friend bool operator==(const SmallVector& a, const SmallVector& b) {
        return a.size_ == b.size_ && std::equal(a.begin(), a.end(), b.begin());
    }
    friend bool operator!=(const SmallVector& a, const SmallVector& b) { return !(a == b); }
    friend bool operator<(const SmallVector& a, const SmallVector& b) {
        return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
    }
    friend bool operator==(const SmallVector& a, const std::vector<T>& b) {
        return a.size_ == b.size() && std::equal(a.begin(), a.end(), b.begin());
    }
    friend bool operator!=(const SmallVector& a, const std::vector<T>& b) { return !(a == b); }

private:
    void release() {
        if (data_ != inline_) delete[] data_;
        data_ = inline_;
        cap_ = N;
        size_ = 0;
    }
    void move_from(SmallVector& o) {
        if (o.data_ == o.inline_) {
            std::copy(o.inline_, o.inline_ + o.size_, inline_);
            data_ = inline_;
            cap_ = N;
        } else {
            data_ = o.data_;
            cap_ = o.cap_;
            o.data_ = o.inline_;
            o.cap_ = N;
        }
        size_ = o.size_;
        o.size_ = 0;
    }

    T* data_ = inline_;
    size_t size_ = 0;
    size_t cap_ = N;
    T inline_[N];
};

}  // namespace mnn
