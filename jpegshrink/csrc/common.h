// Shared definitions of the compiled core: integer helpers with Python's semantics, DCT block tables,
// and a declared row-major grid for context layouts.
//
// Everything here is integer and well defined in C++17: shifts of negative values go through uint64
// (Python/numba semantics: two's complement), floor division rounds towards minus infinity as Python's
// ``//`` does. The extension is compiled without -march flags, so the output never depends on the CPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>

namespace jsk {

using i64 = std::int64_t;
using u64 = std::uint64_t;

#if defined(__GNUC__)
#define JSK_LIKELY(x) __builtin_expect(!!(x), 1)
#define JSK_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define JSK_INLINE inline __attribute__((always_inline))
#else
#define JSK_LIKELY(x) (x)
#define JSK_UNLIKELY(x) (x)
#define JSK_INLINE inline
#endif

// Python's ``a // b`` for b > 0.
JSK_INLINE i64 floordiv(i64 a, i64 b) {
    i64 q = a / b;
    return (q * b != a && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// ``v << n`` with two's complement wrap-around for negative v (defined behaviour, as numba does it).
JSK_INLINE i64 shl(i64 v, int n) { return static_cast<i64>(static_cast<u64>(v) << n); }

// Bit length of a non-negative value (0 for 0).
JSK_INLINE int bit_length(i64 a) { return a > 0 ? 64 - __builtin_clzll(static_cast<u64>(a)) : 0; }

JSK_INLINE i64 iabs(i64 v) { return v < 0 ? -v : v; }

// The 8x8 DCT block: zig-zag order and the coefficient groups the models use. The Python constants
// (jpegshrink.blocks) are read from here, so this is their only definition.
constexpr int ZIGZAG[64] = {
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40, 48,
    41, 34, 27, 20, 13, 6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23,
    30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63};

struct ZigzagRank {
    int rank[64];
    constexpr ZigzagRank() : rank() {
        for (int k = 0; k < 64; ++k) rank[ZIGZAG[k]] = k;
    }
};
constexpr ZigzagRank ZIGZAG_RANK{};

// The 49 coefficients with both frequencies >= 1, in zig-zag order.
struct InteriorTable {
    int pos[49];
    constexpr InteriorTable() : pos() {
        int n = 0;
        for (int k = 0; k < 64; ++k)
            if (ZIGZAG[k] / 8 >= 1 && ZIGZAG[k] % 8 >= 1) pos[n++] = ZIGZAG[k];
    }
};
constexpr InteriorTable INTERIOR{};
constexpr int N_INTERIOR = 49;

// Edge coefficients: the first row (vertical frequency 0), then the first column (horizontal 0).
constexpr int EDGES[14] = {1, 2, 3, 4, 5, 6, 7, 8, 16, 24, 32, 40, 48, 56};
constexpr int N_EDGES = 14;

// A dense row-major array of counters with named dimensions, placed at ``Offset`` in one counter
// array: ``Grid<OFF, 8, 51, 64>::at(h, ctx, node)``. ``stride0`` is the distance between two values
// of the first dimension (how far apart two hints are).
template <i64 Offset, i64... Dims>
struct Grid {
    static constexpr i64 offset = Offset;
    static constexpr i64 size = (Dims * ...);
    static constexpr i64 end = Offset + size;
    static constexpr i64 dims[sizeof...(Dims)] = {Dims...};
    static constexpr i64 stride0 = size / dims[0];

    template <class... I>
    static constexpr i64 at(I... idx) {
        static_assert(sizeof...(I) == sizeof...(Dims), "one index per dimension");
        const i64 ix[] = {static_cast<i64>(idx)...};
        i64 r = 0;
        for (std::size_t d = 0; d < sizeof...(Dims); ++d) r = r * dims[d] + ix[d];
        return Offset + r;
    }
    // Index of the first element with the given leading indices (the rest zero).
    template <class... I>
    static constexpr i64 base(I... idx) {
        const i64 ix[] = {static_cast<i64>(idx)...};
        i64 r = 0;
        for (std::size_t d = 0; d < sizeof...(Dims); ++d) r = r * dims[d] + (d < sizeof...(I) ? ix[d] : 0);
        return Offset + r;
    }
    // Distance between two neighbouring values of dimension D (the product of the dimensions after it).
    template <std::size_t D>
    static constexpr i64 stride() {
        static_assert(D < sizeof...(Dims), "no such dimension");
        i64 s = 1;
        for (std::size_t d = D + 1; d < sizeof...(Dims); ++d) s *= dims[d];
        return s;
    }
};

}  // namespace jsk
