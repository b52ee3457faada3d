// mix3: the coefficient model v3 kernel (jpegshrink.model._mix3). One template, instantiated for the
// encoder and the decoder, codes one stripe (a range of MCU rows) of every component of an image.
//
// Why it is built this way (see jpegshrink/model/mix3.py for the format description):
//  * every binary decision is predicted by several adaptive counters selected by different contexts
//    (Lepton-class neighbour contexts, a DCT-domain prediction of every coefficient from the
//    dequantised north/west blocks, intra-block neighbours rescaled by the quantiser ratio, zero-run
//    and position, and cross-channel contexts), combined by an integer logistic mixer whose weight set
//    is chosen by a small context, then refined by two APM/SSE stages;
//  * everything is integer (shifts of negative numbers are arithmetic: gcc/clang guarantee it, and
//    C++20 defines it) so every machine computes the same bits;
//  * one stripe is one independent stream with its own model state, so stripes decode in parallel and
//    the bytes do not depend on how many threads run them;
//  * anything read from a stream is range-checked before it is used as an index or stored.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "../../csrc/common.h"
#ifdef __linux__
#include <sys/mman.h>
#endif

namespace py = pybind11;

namespace mix3 {

// ------------------------------------------------------------------------------------------------
// Fixed tables: squash/stretch of the paq family (12-bit probabilities, stretch domain +-2047).
static int16_t STRETCH[4096];
static int32_t RATE[1024];  // counter step 65536 / (n + 1.5)
//: Mixer learning rate (error x input x MIX_LR >> 13) and the final blend of the mixer output with
//: the two APM outputs (eighths); measured on held-out-free training files, fixed by the format.
static const int MIX_LR = 5, MIX_P = 2, MIX_A1 = 3, MIX_A2 = 3;

static int squash(int d) {
  static const int t[33] = {1,    2,    3,    6,    10,   16,   27,   45,   73,   120,  194,
                            310,  488,  747,  1101, 1546, 2047, 2549, 2994, 3348, 3607, 3785,
                            3901, 3975, 4024, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094};
  if (d > 2047) d = 2047;
  if (d < -2047) d = -2047;
  int w = d & 127;
  int i = (d >> 7) + 16;
  return (t[i] * (128 - w) + t[i + 1] * w + 64) >> 7;
}

static int16_t SQUASH[4095];  // SQUASH[d + 2047]

static bool init_tables() {
  for (int d = -2047; d <= 2047; ++d) SQUASH[d + 2047] = (int16_t)squash(d);
  int pi = 0;
  for (int x = -2047; x <= 2047; ++x) {
    int v = squash(x);
    for (int i = pi; i <= v; ++i) STRETCH[i] = (int16_t)x;
    pi = v + 1;
  }
  for (int i = pi; i < 4096; ++i) STRETCH[i] = 2047;
  for (int n = 0; n < 1024; ++n) RATE[n] = 131072 / (2 * n + 3);
  return true;
}
static const bool TABLES_READY = init_tables();

static inline int sq12(int d) {
  if (d > 2047) d = 2047;
  if (d < -2047) d = -2047;
  return SQUASH[d + 2047];
}

// ------------------------------------------------------------------------------------------------
// Layout: the sizes of every table, and each table as a named row-major grid (jsk::Grid: its
// dimensions in order and its offset in the array it lives in). Changing any of them changes the
// format (a new model id).
enum : int {
  AC_SLOTS = 9,        // contexts per AC decision (see code_block)
  AC_TBITS_MAX = 21,   // counters per hashed AC slot table: 2^ac_table_bits (blocks of AC_BLOCK), at most 2^21
  AC_TBITS_MIN = 12,
  CNT_SLOTS = 4,       // contexts per nonzero-count decision
  CNT_TBITS = 17,      // counters per hashed count slot table (blocks of CNT_BLOCK)
  DC_SLOTS = 4,        // contexts per DC decision
  DC_TBITS = 16,       // counters per hashed DC slot table (blocks of DC_BLOCK)
  AC_BLOCK = 32,       // counters per AC context (AC_VALUE below)
  AC_BLOCK_LOG = 5,
  CNT_BLOCK = 64,      // counters per count context: the nodes of the 6-bit tree
  CNT_BLOCK_LOG = 6,
  DC_BLOCK = 64,       // counters per DC context (DC_VALUE below)
  DC_BLOCK_LOG = 6,
  N_CLASSES = 2,       // luma (component 0), chroma (the others)
  AC_TYPES = 8,        // decision types for weight sets/APMs: exponent bit 0..5+, sign, mantissa top
  K_BANDS = 5,         // frequency bands of the zigzag index (k_band)
  REM_BINS = 10,       // bins of the nonzero coefficients still to come (rem_bin)
  PRIOR_BINS = 12,     // bit length of Lepton's neighbour prior, capped
  CNT_DEPTH = 6,       // depth of the count's binary tree
  NEIGH_BINS = 9,      // neighbours' mean count / 8
  DC_SPREAD = 12,      // bins of the DC estimates' spread (u1) and side disagreement (u2)
  AC_INPUTS = AC_SLOTS + 1,   // + bias
  CNT_INPUTS = CNT_SLOTS + 1,
  DC_INPUTS = DC_SLOTS + 1,
  SQ_MAX = 20,         // signed log predictions are clamped to +-SQ_MAX
  SQ_SPAN = 2 * SQ_MAX + 1,
  MANT_EXPS = 20,      // lower mantissa bits: by exponent (capped) and bit position (capped)
  MANT_BITS = 20,
  SIGN_PRED = 2,       // NO_SIGN_MIX: the signed log predictions clamped to +-SIGN_PRED
  SIGN_SPAN = 2 * SIGN_PRED + 1,
  SIGN_NB = 3,         // NO_SIGN_MIX: a neighbour's sign: none/zero, positive, negative
  TOP_EXPS = 7,        // NO_TOP_MIX: exponent 2..8+
  TOP_SPAN = 5,        // NO_TOP_MIX: the prediction's half-octave log minus the value's, -2..2
  LIMIT = 255,
  MAX_COMPONENTS = 4,
};
using jsk::Grid;

// Mixer weight sets, all in one int32 array; a set holds one weight per slot, then the bias.
using WAc = Grid<0, N_CLASSES, AC_TYPES, K_BANDS, AC_INPUTS>;                 // [class][type][band][input]
using WCnt = Grid<WAc::end, N_CLASSES, CNT_DEPTH, CNT_INPUTS>;                 // [class][tree depth][input]
using WDc = Grid<WCnt::end, N_CLASSES, AC_TYPES, DC_INPUTS>;                   // [class][type][input]
// The second mixer's sets, chosen by another context (AC: remaining count; count: neighbours' count;
// DC: side disagreement); the two outputs are averaged in the stretch domain.
using W2Ac = Grid<WDc::end, N_CLASSES, AC_TYPES, REM_BINS, AC_INPUTS>;        // [class][type][remaining bin][input]
using W2Cnt = Grid<W2Ac::end, N_CLASSES, CNT_DEPTH, NEIGH_BINS, CNT_INPUTS>;  // [class][depth][neighbours][input]
using W2Dc = Grid<W2Cnt::end, N_CLASSES, AC_TYPES, DC_SPREAD, DC_INPUTS>;     // [class][type][u2][input]
constexpr int N_WEIGHTS = (int)W2Dc::end;

// Slot 0 of each decision kind: directly indexed counters that start from trained values (the learned
// start), all in one uint32 array.
using DAc = Grid<0, N_CLASSES, 64, REM_BINS, PRIOR_BINS, AC_BLOCK>;     // [class][zigzag k][remaining][prior][AC_VALUE]
using DCnt = Grid<DAc::end, N_CLASSES, 65, CNT_BLOCK>;                  // [class][neighbours' mean count][tree node]
using DDc = Grid<DCnt::end, N_CLASSES, DC_SPREAD, DC_SPREAD, DC_BLOCK>;  // [class][u1][u2][DC_VALUE]
constexpr int N_DIRECT = (int)DDc::end;

// APM/SSE contexts, one APM each.
using ApmAc1 = Grid<0, N_CLASSES, AC_TYPES, 64>;          // [class][type][zigzag k]
using ApmAc2 = Grid<0, N_CLASSES, AC_TYPES, SQ_SPAN>;     // [class][type][joint prediction's signed log]
using ApmCnt = Grid<0, N_CLASSES, CNT_BLOCK>;             // [class][tree node]
using ApmDc = Grid<0, N_CLASSES, AC_TYPES, DC_SPREAD>;    // [class][type][u1]

// Single-counter decisions, one table each.
using Mant = Grid<0, N_CLASSES, 64, MANT_EXPS, MANT_BITS>;             // [class][k][exponent][bit]
using SignCtx = Grid<0, N_CLASSES, 64, SIGN_SPAN, SIGN_SPAN, SIGN_NB>;  // [class][k][N pred][W pred][nb sign]
using TopCtx = Grid<0, N_CLASSES, 64, TOP_EXPS, TOP_SPAN>;              // [class][k][exponent - 2][pred - value]

//: Where each decision of one value's binarisation (exponent in unary, sign, top mantissa bit) finds
//: its counter inside a context's block of counters.
struct ValueLayout {
  int n_exp;     // exponent bits 0..n_exp-1 at their own counter
  int sign;
  int top;       // top mantissa bit, by exponent 2, 3, ... (the last one shared by all larger)
  int n_top;
  int long_exp;  // exponent bits n_exp, n_exp + 1, ... (the last one shared by all larger)
  int n_long;
  constexpr int exp_at(int n) const { return n < n_exp ? n : long_exp + std::min(n - n_exp, n_long - 1); }
  constexpr int top_at(int n) const { return top + std::min(n - 2, n_top - 1); }
  constexpr int end() const { return long_exp + n_long; }
};
constexpr ValueLayout AC_VALUE{12, 12, 13, 12, 25, 7};
constexpr ValueLayout DC_VALUE{18, 18, 19, 21, 40, 7};
static_assert(AC_VALUE.sign == AC_VALUE.n_exp && AC_VALUE.top == AC_VALUE.sign + 1 &&
              AC_VALUE.long_exp == AC_VALUE.top + AC_VALUE.n_top && AC_VALUE.end() == AC_BLOCK, "AC block layout");
static_assert(DC_VALUE.sign == DC_VALUE.n_exp && DC_VALUE.top == DC_VALUE.sign + 1 &&
              DC_VALUE.long_exp == DC_VALUE.top + DC_VALUE.n_top && DC_VALUE.end() <= DC_BLOCK, "DC block layout");
static_assert((1 << AC_BLOCK_LOG) == AC_BLOCK && (1 << CNT_BLOCK_LOG) == CNT_BLOCK && (1 << DC_BLOCK_LOG) == DC_BLOCK,
              "hashed tables are addressed in blocks of a power of two");

//: Switches that leave parts of the model out. A registered model's *profile* (its weights file) may
//: set some of them (the `fast` profile drops the parts that cost the most time per bit saved); the
//: others exist for tools/ablate_mix3.py. Every combination is a different format.
enum Flags : uint32_t {
  NO_ADVPRED = 1,      // DCT-domain N/W prediction: AC slots 1-3 and the count's nzpred context
  NO_INTRA = 2,        // AC slot 4: intra-block neighbours rescaled by the quantiser ratio
  NO_CROSS = 4,        // cross-channel contexts (AC slots 7-8 fall back, count and DC slot 3)
  NO_SSE = 8,          // both APM/SSE stages
  NO_MIXER = 16,       // slot 0 alone, no mixing
  NO_RUN = 32,         // AC slot 5: zero run and zeros left
  NO_MIX2 = 64,        // the second mixer (weight sets chosen by remaining count / neighbour count)
  NO_SIDE_PRED = 128,  // AC slots 2-3: north-only and west-only DCT-domain predictions (slot 1 stays)
  NO_COUNT_PRED = 256, // the count's nzpred context (63 predictions per block, for one context)
  NO_EXACT = 512,      // AC slot 6: the exact small values of the same coefficient in N, W, NW
  NO_SIGN_MIX = 1024,  // AC sign: one counter chosen by class, position, the N and W DCT-domain
                       // predictions (SIGN_PRED) and a neighbour's sign, instead of the mixed slots
  NO_TOP_MIX = 2048,   // AC top mantissa bit: one counter chosen by class, position, exponent and the
                       // prediction against the value's octave (TOP_EXPS, TOP_SPAN), not the mixed slots
  NO_AUX = 4096,       // AC slots 7-8 (cross-channel for chroma, combined predictions for luma)
  NET_HINT = 8192,     // experiment (tools/net_prior_mix3.py): AC slot 6 reads a per-coefficient hint
                       // given beside the coefficients (a network's prediction from causal blocks)
};
//: The slots each AC decision reads, given the flags (CNT and DC decisions always read all of theirs).
struct SlotList {
  uint8_t s[16];
  int n;
};
static constexpr SlotList active_ac_slots(uint32_t flags) {
  SlotList l{};
  l.n = 0;
  for (int i = 0; i < AC_SLOTS; ++i) {
    const bool off = ((i >= 1 && i <= 3) && (flags & NO_ADVPRED)) || ((i == 2 || i == 3) && (flags & NO_SIDE_PRED)) ||
                     (i == 4 && (flags & NO_INTRA)) || (i == 5 && (flags & NO_RUN)) || (i == 6 && (flags & NO_EXACT) && !(flags & NET_HINT)) ||
                     ((i == 7 || i == 8) && (flags & NO_AUX));
    if (!off) l.s[l.n++] = (uint8_t)i;
  }
  return l;
}
static constexpr SlotList all_slots(int n) {
  SlotList l{};
  l.n = n;
  for (int i = 0; i < n; ++i) l.s[i] = (uint8_t)i;
  return l;
}

//: Flag sets the kernel is compiled for (no per-decision tests of the flags: the profiles' hot paths);
//: any other combination (ablations) runs the GENERIC instance, which reads the flags at run time. The
//: instances compute the same bits: only where the flags are known differs.
enum : uint32_t {
  GENERIC = 0xFFFFFFFFu,
  FLAGS_DENSE = 0,
  FLAGS_FAST = NO_MIX2 | NO_SSE | NO_SIDE_PRED | NO_COUNT_PRED | NO_EXACT | NO_INTRA | NO_RUN,
  FLAGS_FAST2 = FLAGS_FAST | NO_SIGN_MIX | NO_TOP_MIX,
  FLAGS_LITE = FLAGS_FAST2 | NO_AUX,
};

using jsk::ZIGZAG;
//: Integer DCT basis (as adaptive-1): K[u][x] = round(2048 sqrt(2) C(u) cos((2x + 1) u pi / 16)).
static const int64_t K[8][8] = {{2048, 2048, 2048, 2048, 2048, 2048, 2048, 2048},
                                {2841, 2408, 1609, 565, -565, -1609, -2408, -2841},
                                {2676, 1108, -1108, -2676, -2676, -1108, 1108, 2676},
                                {2408, -565, -2841, -1609, 1609, 2841, 565, -2408},
                                {2048, -2048, -2048, 2048, 2048, -2048, -2048, 2048},
                                {1609, -2841, 565, 2408, -2408, -565, 2841, -1609},
                                {1108, -2676, 2676, -1108, -1108, 2676, -2676, 1108},
                                {565, -1609, 2408, -2841, 2841, -2408, 1609, -565}};
//: Boundary weight of frequency v in the DCT-domain neighbour prediction (value of the basis function
//: at the block edge, x256, with the slight high-frequency boost paq8px found useful).
static const int64_t BW[8] = {181, 272, 288, 304, 320, 336, 352, 368};
//: Edge-gradient weights of the DC prediction (as adaptive-1): 3 K[u][0] - K[u][1].
static const int64_t KG[8] = {3 * 2048 - 2048, 3 * 2841 - 2408, 3 * 2676 - 1108, 3 * 2408 + 565,
                              3 * 2048 + 2048, 3 * 1609 + 2841, 3 * 1108 + 2676, 3 * 565 + 1609};

static inline int bitlen(uint64_t a) { return a ? 64 - __builtin_clzll(a) : 0; }
using jsk::iabs;
//: a / b truncated (C++ semantics), b > 0, skipping the division when the quotient is 0 (most are).
static inline int64_t tdiv(int64_t a, int64_t b) { return (a < b && a > -b) ? 0 : a / b; }
using jsk::floordiv;
//: Half-octave log of a magnitude: 0,1,2,3,4,4,5,5,6,6,6,6,7,...
static inline int qlog(int64_t x) {
  if (x < 4) return (int)x;
  int b = bitlen((uint64_t)x);
  return 2 * b + (int)((x >> (b - 2)) & 1) - 2;
}
//: Signed half-octave log, clamped to [-SQ_MAX, SQ_MAX].
static inline int sqlog(int64_t x) {
  int m = qlog(iabs(x));
  if (m > SQ_MAX) m = SQ_MAX;
  return x < 0 ? -m : m;
}
static inline int rem_bin(int r) {
  if (r < 4) return r;
  if (r < 6) return 4;
  if (r < 8) return 5;
  if (r < 12) return 6;
  if (r < 20) return 7;
  if (r < 32) return 8;
  return 9;
}
static inline int k_band(int k) {
  if (k == 1) return 0;
  if (k < 6) return 1;
  if (k < 15) return 2;
  if (k < 28) return 3;
  return 4;
}
static inline uint64_t hash(uint64_t a, uint64_t b, uint64_t c = 0, uint64_t d = 0, uint64_t e = 0) {
  uint64_t h = a * 0x9E3779B97F4A7C15ull;
  h = (h ^ (h >> 29)) + b * 0xBF58476D1CE4E5B9ull;
  h = (h ^ (h >> 32)) + c * 0x94D049BB133111EBull;
  h = (h ^ (h >> 29)) + d * 0xD6E8FEB86659FD93ull;
  h = (h ^ (h >> 32)) + e * 0xA0761D6478BD642Full;
  return h ^ (h >> 31);
}

// ------------------------------------------------------------------------------------------------
// Adaptive counter: 22-bit probability and 10-bit hit count in one uint32, stored XOR 0x80000000 so
// that an all-zero (calloc'ed, lazily mapped) table starts every context at p = 1/2, n = 0.
static inline int ctr_p12(uint32_t s) { return (int)((s ^ 0x80000000u) >> 20); }
static inline void ctr_update(uint32_t& s, int y, int limit) {
  uint32_t v = s ^ 0x80000000u;
  int32_t p = (int32_t)(v >> 10);
  int n = (int)(v & 1023);
  int32_t target = y ? (1 << 22) - 1 : 0;
  p += (int32_t)(((int64_t)(target - p) * RATE[n]) >> 16);
  if (n < limit) ++n;
  s = (((uint32_t)p << 10) | (uint32_t)n) ^ 0x80000000u;
}

struct ZeroTable {  // anonymous mapping: zero-filled, and pages an image never touches cost nothing
  uint32_t* p = nullptr;
  size_t bytes = 0;
  explicit ZeroTable(size_t n) : bytes(n * sizeof(uint32_t)) {
#ifdef __linux__
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    // The hashed tables are read at random: with 4 KiB pages nearly every read also misses the TLB.
    // Huge pages (where the kernel allows them on request) remove most of those misses.
    if (bytes >= (size_t(2) << 20)) madvise(m, bytes, MADV_HUGEPAGE);
    p = static_cast<uint32_t*>(m);
#else
    p = static_cast<uint32_t*>(std::calloc(n, sizeof(uint32_t)));
    if (!p) throw std::bad_alloc();
#endif
  }
  ~ZeroTable() {
#ifdef __linux__
    munmap(p, bytes);
#else
    std::free(p);
#endif
  }
  ZeroTable(const ZeroTable&) = delete;
  ZeroTable& operator=(const ZeroTable&) = delete;
};

// APM / SSE stage (paq8): 33 interpolation buckets over the stretched input per context.
struct APM {
  std::vector<uint16_t> t;
  int idx = 0;
  explicit APM(int n) : t((size_t)n * 33) {
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < 33; ++j) t[(size_t)i * 33 + j] = (uint16_t)(sq12((j - 16) * 128) * 16);
  }
  int pp(int pr, int cx) {
    int s = STRETCH[pr] + 2048;  // 1..4095
    int lo = s >> 7, w = s & 127;
    idx = cx * 33 + lo;
    int p = ((int)t[idx] * (128 - w) + (int)t[idx + 1] * w) >> 11;
    if (w >= 64) ++idx;
    return std::min(4095, std::max(1, p));
  }
  void update(int y) {
    int g = (y << 16) + (y << 7) - y - y;
    t[idx] = (uint16_t)(t[idx] + ((g - (int)t[idx]) >> 7));
  }
};

// ------------------------------------------------------------------------------------------------
// Binary arithmetic coder: the carry-less 32-bit coder of the paq/lpaq family (same as
// jpegshrink.coding.binary_arith), P(bit = 1) given in units of 2^-16.
struct Encoder {
  uint32_t x1 = 0, x2 = 0xFFFFFFFFu;
  std::vector<uint8_t> out;
  int code(int bit, int p16) {
    uint32_t xmid = x1 + (uint32_t)(((uint64_t)(x2 - x1) * (uint32_t)p16) >> 16);
    if (bit) x2 = xmid; else x1 = xmid + 1;
    while (((x1 ^ x2) & 0xFF000000u) == 0) {
      out.push_back((uint8_t)(x2 >> 24));
      x1 <<= 8;
      x2 = (x2 << 8) | 255;
    }
    return bit;
  }
  void flush() { out.push_back((uint8_t)(x1 >> 24)); }
};

struct Decoder {
  const uint8_t* d = nullptr;
  size_t n = 0, pos = 0;
  uint32_t x1 = 0, x2 = 0xFFFFFFFFu, x = 0;
  void start(const uint8_t* data, size_t len) {
    d = data; n = len; pos = 0;
    for (int i = 0; i < 4; ++i) x = (x << 8) | next();
  }
  uint32_t next() {
    uint32_t b = pos < n ? d[pos] : 255u;
    ++pos;
    return b;
  }
  int code(int, int p16) {
    uint32_t xmid = x1 + (uint32_t)(((uint64_t)(x2 - x1) * (uint32_t)p16) >> 16);
    int y = x <= xmid;
    if (y) x2 = xmid; else x1 = xmid + 1;
    while (((x1 ^ x2) & 0xFF000000u) == 0) {
      x1 <<= 8;
      x2 = (x2 << 8) | 255;
      x = (x << 8) | next();
    }
    return y;
  }
  bool overrun() const { return pos > n + 4; }
};

// ------------------------------------------------------------------------------------------------
struct Component {
  int16_t* co = nullptr;  // [R][C][64], natural order
  const uint8_t* hint = nullptr;  // NET_HINT only: [R][C][64], natural order
  int R = 0, C = 0, hs = 1, vs = 1;
  int64_t q[64];
  int64_t bwq_n[64], bwq_w[64];        // (-1)^v BW[v] q[n] and (-1)^u BW[u] q[n]: the boundary weights
  int r0 = 0, r1 = 0;                  // this stripe's block rows
  std::vector<uint8_t> nz;             // [R][C] nonzero AC count (rows r0..r1 valid)
  std::vector<int32_t> dcres;          // [R][C] DC prediction residual, clamped
  std::vector<int64_t> grad;           // [2][C][4][8] edge gradients, previous / current row
  //: [2][C][16] what each block contributes to its neighbours' DCT-domain predictions, previous /
  //: current row: [u] = sum over v of bwq_n[v][u] x coefficient (read by the block below),
  //: [8 + v] = sum over u of bwq_w[v][u] x coefficient (read by the block to the right); summed while
  //: the block is coded (nonzero coefficients only) instead of over all 64 when it is read.
  std::vector<int64_t> bnd;
  const int16_t* blk(int r, int c) const { return co + ((size_t)r * C + c) * 64; }
  int16_t* blk_w(int r, int c) { return co + ((size_t)r * C + c) * 64; }
};

//: Where the co-located block of another component is, if it is coded before this one in this stripe.
static bool colocated(const Component& from, const Component& to, int by, int bx, int& ry, int& rx) {
  ry = (int)((int64_t)by * to.vs / std::max(1, from.vs));
  rx = (int)((int64_t)bx * to.hs / std::max(1, from.hs));
  return ry >= to.r0 && ry < to.r1 && rx >= 0 && rx < to.C;
}

//: Where one value's mixer weight sets and APM contexts are, for decision type t: set w + t * ws (first
//: mixer), w2 + t * ws2 (second), APM contexts a1 + t * as1 and a2 + t * as2 -- the grids' entries of
//: type 0 and the strides of their type dimension (0 where the grid has none).
struct Sel {
  int64_t w, ws, w2, ws2, a1, as1, a2, as2;
  APM* A1;
  APM* A2;
};

//: A table's pages that are not all zero (a stripe touches only part of its hashed tables; the tables
//: of a new kernel start zero-filled, so the rest need not be stored or copied).
struct SparseTable {
  size_t words = 0;              // the table's size, in counters
  std::vector<uint32_t> pages;   // indices of the stored pages
  std::vector<uint32_t> data;    // their contents, PAGE_WORDS each (the last page may be shorter)
  static constexpr size_t PAGE_WORDS = 1024;  // 4 KiB

  void save(const ZeroTable& t) {
    words = t.bytes / sizeof(uint32_t);
    pages.clear();
    data.clear();
    for (size_t i = 0; i < words; i += PAGE_WORDS) {
      const size_t n = std::min(PAGE_WORDS, words - i);
      const uint32_t* src = t.p + i;
      if (std::any_of(src, src + n, [](uint32_t x) { return x != 0; })) {
        pages.push_back((uint32_t)(i / PAGE_WORDS));
        data.insert(data.end(), src, src + n);
      }
    }
  }
  void load(ZeroTable& t) const {
    if (words * sizeof(uint32_t) != t.bytes) throw std::invalid_argument("mix3: snapshot of another layout");
    const uint32_t* src = data.data();
    for (uint32_t pg : pages) {
      const size_t i = (size_t)pg * PAGE_WORDS, n = std::min(PAGE_WORDS, words - i);
      std::memcpy(t.p + i, src, n * sizeof(uint32_t));
      src += n;
    }
  }
};

//: Everything a stripe's model has learned when it ends: the hashed and single-counter tables, the
//: APMs, the mixer weights and the slot-0 counters. A seeded stripe starts from the seed band's
//: snapshot instead of the trained start (mix3.py, ``Profile.seed_fraction``).
struct Snapshot {
  uint32_t flags = 0;
  int ac_tbits = 0;
  std::array<SparseTable, 6> tables;          // in the order of Kernel::tables()
  std::array<std::vector<uint16_t>, 4> apms;  // in the order of Kernel::apms()
  std::vector<uint32_t> direct;
  std::vector<int32_t> w;
};

template <class Coder, bool ENC, uint32_t FL = GENERIC>
class Kernel {
  //: Whether a part is left out: a constant in the compiled-for flag sets, read from flags_ in GENERIC.
  bool off(uint32_t f) const { return FL == GENERIC ? (flags_ & f) != 0 : (FL & f) != 0; }

 public:
  Kernel(std::vector<Component>& comps, const int32_t* init, const uint32_t* direct, uint32_t flags, int ac_tbits)
      : comps_(comps), flags_(flags), ac_tbits_(ac_tbits),
        ac_(size_t(AC_SLOTS) << ac_tbits), cnt_(size_t(CNT_SLOTS) << CNT_TBITS),
        dc_(size_t(DC_SLOTS) << DC_TBITS), mant_(Mant::size), sign_(SignCtx::size), top_(TopCtx::size),
        apm_ac1_(ApmAc1::size), apm_ac2_(ApmAc2::size), apm_cnt_(ApmCnt::size), apm_dc_(ApmDc::size), w_(N_WEIGHTS),
        direct_(N_DIRECT, 0) {
    if (init) {
      std::memcpy(w_.data(), init, sizeof(int32_t) * N_WEIGHTS);
    } else {
      // About 1.2 in total per weight set (the slots mostly agree at first); the bias starts at 0.
      auto fill = [&](int64_t begin, int64_t end, int inputs, int32_t weight) {
        for (int64_t i = begin; i < end; ++i) w_[i] = (i - begin) % inputs == inputs - 1 ? 0 : weight;
      };
      fill(WAc::offset, WAc::end, AC_INPUTS, 8700);
      fill(WCnt::offset, WCnt::end, CNT_INPUTS, 19000);
      fill(WDc::offset, WDc::end, DC_INPUTS, 19000);
      fill(W2Ac::offset, W2Ac::end, AC_INPUTS, 8700);
      fill(W2Cnt::offset, W2Cnt::end, CNT_INPUTS, 19000);
      fill(W2Dc::offset, W2Dc::end, DC_INPUTS, 19000);
    }
    if (direct) std::memcpy(direct_.data(), direct, sizeof(uint32_t) * N_DIRECT);
    if (FL != GENERIC && flags != FL) throw std::logic_error("mix3: kernel instance for other flags");
    act_ac_ = active_ac_slots(flags);
  }

  //: Start from a snapshot instead of the trained start (it must come from the same flags and sizes).
  void load(const Snapshot& s) {
    if (s.flags != flags_ || s.ac_tbits != ac_tbits_) throw std::invalid_argument("mix3: snapshot of another profile");
    for (size_t i = 0; i < s.tables.size(); ++i) s.tables[i].load(*tables()[i]);
    for (size_t i = 0; i < s.apms.size(); ++i) apms()[i]->t = s.apms[i];
    w_ = s.w;
    direct_ = s.direct;
  }
  void save(Snapshot& s) {
    s.flags = flags_;
    s.ac_tbits = ac_tbits_;
    for (size_t i = 0; i < s.tables.size(); ++i) s.tables[i].save(*tables()[i]);
    for (size_t i = 0; i < s.apms.size(); ++i) s.apms[i] = apms()[i]->t;
    s.w = w_;
    s.direct = direct_;
  }

  Coder coder;
  bool err = false;
  std::vector<int32_t>& weights() { return w_; }
  //: The learned tables and APMs, in the order a Snapshot keeps them.
  std::array<ZeroTable*, 6> tables() { return {&ac_, &cnt_, &dc_, &mant_, &sign_, &top_}; }
  std::array<APM*, 4> apms() { return {&apm_ac1_, &apm_ac2_, &apm_cnt_, &apm_dc_}; }
  std::vector<uint32_t>& direct() { return direct_; }

  void run() {
    for (size_t ci = 0; ci < comps_.size(); ++ci) {
      Component& cp = comps_[ci];
      cp.grad.assign((size_t)2 * cp.C * 32, 0);
      cp.bnd.assign((size_t)2 * cp.C * 16, 0);
      for (int by = cp.r0; by < cp.r1 && !err; ++by) {
        for (int bx = 0; bx < cp.C && !err; ++bx) code_block((int)ci, by, bx);
        std::swap_ranges(cp.grad.begin(), cp.grad.begin() + (size_t)cp.C * 32,
                         cp.grad.begin() + (size_t)cp.C * 32);
        std::swap_ranges(cp.bnd.begin(), cp.bnd.begin() + (size_t)cp.C * 16, cp.bnd.begin() + (size_t)cp.C * 16);
      }
    }
  }

 private:
  std::vector<Component>& comps_;
  uint32_t flags_;
  int ac_tbits_;
  SlotList act_ac_;  // which slots an AC decision reads (by the flags; the other kinds read all)
  ZeroTable ac_, cnt_, dc_, mant_, sign_, top_;
  APM apm_ac1_, apm_ac2_, apm_cnt_, apm_dc_;
  std::vector<int32_t> w_;
  std::vector<uint32_t> direct_;
  uint32_t* slot_[16];

  enum Kind { AC, CNT, DC };
  //: Decision types of a value (AC and DC), which select weight sets and APM contexts: exponent bit n
  //: is type min(n, T_EXP_LAST); the count's tree uses its depth as its type.
  enum DecisionType : int { T_EXP_LAST = 5, T_SIGN = 6, T_TOP = 7 };
  static_assert(T_TOP + 1 == AC_TYPES, "one weight set and APM context per decision type");
  //: f(i) for each slot i a decision of this kind reads (a constant list outside GENERIC).
  template <int KIND, class F>
  void for_slots(F&& f) const {
    if constexpr (KIND == AC && FL == GENERIC) {
      for (int j = 0; j < act_ac_.n; ++j) f((int)act_ac_.s[j]);
    } else {
      constexpr SlotList l = KIND == AC ? active_ac_slots(FL) : all_slots(KIND == CNT ? CNT_SLOTS : DC_SLOTS);
      for (int j = 0; j < l.n; ++j) f((int)l.s[j]);
    }
  }

  // One mixed binary decision of type t: counters slot_[i][off] for the slots the decision kind reads
  // (weight i of a set belongs to slot i; the bias is weight NS), one or two mixers, up to two APMs.
  template <int KIND>
  int mixed_bit(int y, int off_, const Sel& s, int t) {
    constexpr int NS = KIND == AC ? AC_SLOTS : KIND == CNT ? CNT_SLOTS : DC_SLOTS;
    int32_t x[NS + 1];
    uint32_t* c[NS];
    for_slots<KIND>([&](int i) {
      // A slot a decision reads is always set, except that GENERIC tolerates a missing one as 0.
      c[i] = slot_[i] ? slot_[i] + off_ : nullptr;
    });
    int p, p1 = 2048, p2 = 2048;
    int32_t* w1 = &w_[s.w + t * s.ws];
    int32_t* w2 = &w_[s.w2 + t * s.ws2];
    const bool two = !off(NO_MIX2);
    if (off(NO_MIXER)) {
      p = std::min(4095, std::max(1, ctr_p12(slot_[0][off_])));
    } else {
      int64_t dot1 = (int64_t)256 * w1[NS], dot2 = two ? (int64_t)256 * w2[NS] : 0;
      for_slots<KIND>([&](int i) {
        x[i] = (FL != GENERIC || c[i]) ? STRETCH[ctr_p12(*c[i])] : 0;
        dot1 += (int64_t)x[i] * w1[i];
        if (two) dot2 += (int64_t)x[i] * w2[i];
      });
      int d1 = (int)std::max<int64_t>(-2047, std::min<int64_t>(2047, dot1 >> 16));
      p1 = sq12(d1);
      if (two) {
        int d2 = (int)std::max<int64_t>(-2047, std::min<int64_t>(2047, dot2 >> 16));
        p2 = sq12(d2);
        p = sq12((d1 + d2) >> 1);
      } else {
        p = p1;
      }
    }
    int pf = p;
    if (!off(NO_SSE)) {
      int pa = s.A1->pp(p, s.a1 + t * s.as1);
      int pb = s.A2 ? s.A2->pp(p, s.a2 + t * s.as2) : pa;
      pf = (MIX_P * p + MIX_A1 * pa + MIX_A2 * pb + 4) >> 3;
    }
    int p16 = pf * 16 + 8;
    if (p16 < 32) p16 = 32;
    if (p16 > 65504) p16 = 65504;
    int bit = coder.code(y, p16);
    if (!off(NO_SSE)) {
      s.A1->update(bit);
      if (s.A2) s.A2->update(bit);
    }
    if (!off(NO_MIXER)) {
      int e1 = ((bit << 12) - p1) * MIX_LR;
      int e2 = ((bit << 12) - p2) * MIX_LR;
      for_slots<KIND>([&](int i) {
        w1[i] += (x[i] * e1) >> 13;
        if (two) w2[i] += (x[i] * e2) >> 13;
      });
      w1[NS] += (256 * e1) >> 13;
      if (two) w2[NS] += (256 * e2) >> 13;
    }
    for_slots<KIND>([&](int i) {
      if (FL != GENERIC || c[i]) ctr_update(*c[i], bit, LIMIT);
    });
    return bit;
  }

  uint32_t* ac_slot(int i, uint64_t h) {
    return ac_.p + ((size_t)i << ac_tbits_) + ((h >> (64 - ac_tbits_ + AC_BLOCK_LOG)) << AC_BLOCK_LOG);
  }
  uint32_t* cnt_slot(int i, uint64_t h) {
    return cnt_.p + ((size_t)i << CNT_TBITS) + ((h >> (64 - CNT_TBITS + CNT_BLOCK_LOG)) << CNT_BLOCK_LOG);
  }
  uint32_t* dc_slot(int i, uint64_t h) {
    return dc_.p + ((size_t)i << DC_TBITS) + ((h >> (64 - DC_TBITS + DC_BLOCK_LOG)) << DC_BLOCK_LOG);
  }

  // Exp-Golomb-style binarisation of one value: exponent (bit length) in unary, sign, mantissa bits.
  // The exponent bits, the sign and the top mantissa bit are mixed decisions (types 0..5, 6, 7); the
  // lower mantissa bits use one counter per (class, position, exponent, bit).
  // One adaptive counter decides the bit.
  int direct_bit(int y, uint32_t& c) {
    int p16 = ctr_p12(c) * 16 + 8;
    p16 = std::min(65504, std::max(32, p16));
    int bit = coder.code(y, p16);
    ctr_update(c, bit, LIMIT);
    return bit;
  }

  //: Where the AC sign and top mantissa bit are coded by one counter (NO_SIGN_MIX, NO_TOP_MIX): the
  //: sign's counter, the block of top-bit counters of this position and the prediction's |sqlog|.
  struct DirectCtx {
    uint32_t* sign = nullptr;
    uint32_t* top = nullptr;  // TopCtx at this class and position, exponent 2, difference -2
    int pred = 0;
  };

  template <int KIND>
  int64_t code_value(int64_t v, int max_exp, int cls, int k, const Sel& s, const DirectCtx* d = nullptr) {
    constexpr ValueLayout lay = KIND == AC ? AC_VALUE : DC_VALUE;
    int64_t a = v < 0 ? -v : v;
    int e = ENC ? bitlen((uint64_t)a) : 0;
    int n = 0;
    while (n < max_exp) {
      int b = mixed_bit<KIND>(ENC ? (e > n) : 0, lay.exp_at(n), s, std::min(n, (int)T_EXP_LAST));
      if (!b) break;
      ++n;
    }
    if (n == 0) return 0;
    const bool sign_mixed = !(KIND == AC && off(NO_SIGN_MIX));
    int neg = sign_mixed ? mixed_bit<KIND>(ENC ? (v < 0) : 0, lay.sign, s, T_SIGN)
                         : direct_bit(ENC ? (v < 0) : 0, *d->sign);
    int64_t r = 1;
    if (n >= 2) {
      const int ty = ENC ? (int)((a >> (n - 2)) & 1) : 0;
      int b;
      if (KIND == AC && off(NO_TOP_MIX)) {
        // the prediction's half-octave log against the value's octave (2n - 2 or 2n - 1)
        const int dd = std::max(-2, std::min(2, d->pred - (2 * n - 2))) + 2;
        b = direct_bit(ty, d->top[TopCtx::at(0, 0, std::min(n, TOP_EXPS + 1) - 2, dd)]);
      } else {
        b = mixed_bit<KIND>(ty, lay.top_at(n), s, T_TOP);
      }
      r = (r << 1) | b;
      uint32_t* m = mant_.p + Mant::at(cls, k, std::min(n, MANT_EXPS - 1), 0);
      for (int i = n - 3; i >= 0; --i)
        r = (r << 1) | direct_bit(ENC ? (int)((a >> i) & 1) : 0, m[std::min(i, MANT_BITS - 1)]);
    }
    return neg ? -r : r;
  }

  void code_block(int ci, int by, int bx) {
    Component& cp = comps_[ci];
    const int cls = ci == 0 ? 0 : 1;
    const bool haveN = by > cp.r0, haveW = bx > 0;
    const int16_t* N = haveN ? cp.blk(by - 1, bx) : nullptr;
    const int16_t* W = haveW ? cp.blk(by, bx - 1) : nullptr;
    const int16_t* NW = (haveN && haveW) ? cp.blk(by - 1, bx - 1) : nullptr;
    const int16_t* NE = (haveN && bx + 1 < cp.C) ? cp.blk(by - 1, bx + 1) : nullptr;
    // The block as coded so far: contexts read only this, never the encoder's input (which already
    // holds the coefficients the decoder has not decoded yet), so encoder and decoder cannot drift.
    int16_t* const B = cp.blk_w(by, bx);
    int16_t X[64] = {0};
    const bool cross = !off(NO_CROSS);

    // Cross-channel sources: luma (component 0) for every chroma component, the previous chroma
    // component for the third and later ones. Only blocks already coded in this stripe are used.
    const int16_t* L = nullptr;  // co-located luma block
    int lnz = -1;                // its nonzero AC count (average over the blocks it covers)
    int64_t lq[64];
    int lny = 1, lnx = 1, lry = 0, lrx = 0;
    const int16_t* P = nullptr;  // co-located block of the previous chroma component
    int pnz = -1;
    const int64_t* pqt = nullptr;
    int32_t ldcres = 0, pdcres = 0;
    if (ci > 0 && cross) {
      Component& lc = comps_[0];
      if (colocated(cp, lc, by, bx, lry, lrx)) {
        lny = std::max(1, lc.vs / std::max(1, cp.vs));
        lnx = std::max(1, lc.hs / std::max(1, cp.hs));
        if (lry + lny > lc.r1) lny = lc.r1 - lry;
        if (lrx + lnx > lc.C) lnx = lc.C - lrx;
        L = lc.blk(lry, lrx);
        int s = 0;
        for (int y = 0; y < lny; ++y)
          for (int x = 0; x < lnx; ++x) s += lc.nz[(size_t)(lry + y) * lc.C + lrx + x];
        lnz = s / (lny * lnx);
        ldcres = lc.dcres[(size_t)lry * lc.C + lrx];
        for (int i = 0; i < 64; ++i) lq[i] = lc.q[i];
      }
      if (ci > 1) {
        Component& pc = comps_[ci - 1];
        int py, px;
        if (colocated(cp, pc, by, bx, py, px)) {
          P = pc.blk(py, px);
          pnz = pc.nz[(size_t)py * pc.C + px];
          pqt = pc.q;
          pdcres = pc.dcres[(size_t)py * pc.C + px];
        }
      }
    }

    // ---- DCT-domain neighbour predictions (used by the count and by every AC coefficient)
    // sumU[u]: what the north block says the top boundary of column u should be (x q x boundary
    // weight), minus what this block's coded coefficients of that column already contribute;
    // sumV[v] likewise from the west block for row v.
    int64_t sumU[8] = {0}, sumV[8] = {0};
    int64_t* const bnd_cur = cp.bnd.data() + (size_t)cp.C * 16;
    if (N) std::memcpy(sumU, cp.bnd.data() + (size_t)bx * 16, sizeof sumU);  // sum of bwq_n x N by column
    if (W) std::memcpy(sumV, bnd_cur + (size_t)(bx - 1) * 16 + 8, sizeof sumV);  // bwq_w x W by row
    int64_t* const mine = bnd_cur + (size_t)bx * 16;  // this block's, summed below
    for (int i = 0; i < 16; ++i) mine[i] = 0;
    // This block's sums for its DC prediction's edge gradients (see edge_gradients), same way.
    int64_t esum[4][8] = {{0}};
    // How many coefficients the neighbours predict to be nonzero: a context for the count.
    int nzpred = 0;
    if (off(NO_ADVPRED | NO_COUNT_PRED)) {
      nzpred = 0;  // not computed: the context below does not read it
    } else if (N || W) {
      for (int k = 1; k < 64; ++k) {
        const int n = ZIGZAG[k], v = n >> 3, u = n & 7;
        const int64_t d = cp.q[n];
        const bool hN = N && u > 0, hW = W && v > 0;
        int64_t pN = hN ? tdiv(sumU[u], BW[v] * d) : 0, pW = hW ? tdiv(sumV[v], BW[u] * d) : 0;
        int64_t pB = (hN && hW) ? (pN + pW) / 2 : (hN ? pN : pW);
        nzpred += pB != 0;
      }
    } else {
      nzpred = 64;
    }
    // ---- nonzero count of the 63 AC coefficients: 6-bit binary tree
    int nzN = haveN ? cp.nz[(size_t)(by - 1) * cp.C + bx] : -1;
    int nzW = haveW ? cp.nz[(size_t)by * cp.C + bx - 1] : -1;
    int nzNW = NW ? cp.nz[(size_t)(by - 1) * cp.C + bx - 1] : -1;
    int nzNE = NE ? cp.nz[(size_t)(by - 1) * cp.C + bx + 1] : -1;
    int total = 0;
    if (ENC) for (int i = 1; i < 64; ++i) total += B[i] != 0;
    {
      int avg;
      if (nzN >= 0 && nzW >= 0) avg = (2 * nzN + 2 * nzW + std::max(nzNW, 0) + std::max(nzNE, nzN) + 3) / 6;
      else if (nzN >= 0) avg = nzN;
      else if (nzW >= 0) avg = nzW;
      else avg = 64;
      slot_[0] = &direct_[DCnt::at(cls, avg, 0)];
      slot_[1] = cnt_slot(1, hash(2, cls, off(NO_ADVPRED | NO_COUNT_PRED) ? 0 : std::min(nzpred, 40), (nzN + 1) / 8, (nzW + 1) / 8));
      if (cls == 1 && cross) {
        slot_[2] = cnt_slot(2, hash(3, cls, lnz + 1, avg / 4));
        slot_[3] = cnt_slot(3, hash(4, ci, pnz + 1, (lnz + 1) / 4));
      } else {
        slot_[2] = cnt_slot(2, hash(3, cls, (nzNW + 1) / 2, (nzNE + 1) / 4, avg / 8));
        slot_[3] = cnt_slot(3, hash(4, cls, ci, avg / 2, by == cp.r0 ? 1 : 0));
      }
      int node = 1;
      for (int i = 5; i >= 0; --i) {
        int d = 5 - i;
        const Sel sel{WCnt::at(cls, 0, 0), WCnt::stride<1>(),
                      W2Cnt::at(cls, 0, std::min(avg, 64) / 8, 0), W2Cnt::stride<1>(),
                      ApmCnt::at(cls, node), 0, 0, 0, &apm_cnt_, nullptr};
        int b = mixed_bit<CNT>(ENC ? (total >> i) & 1 : 0, node, sel, d);
        node = (node << 1) | b;
      }
      total = node - 64;
      cp.nz[(size_t)by * cp.C + bx] = (uint8_t)total;
    }

    int rem = total;
    int run = 0, ssum = 0;
    for (int k = 1; k < 64 && rem > 0; ++k) {
      const int n = ZIGZAG[k];
      const int v = n >> 3, u = n & 7;
      // DCT-domain predictions of this coefficient from the north and west blocks.
      int64_t den = std::max<int64_t>(cp.q[n], 1);
      int64_t pN = 0, pW = 0;
      // Column 0 (row 0) would need this block's DC, which is coded last: only the other side.
      const bool hN = N && u > 0, hW = W && v > 0;
      if (hN) pN = tdiv(sumU[u], BW[v] * den);
      if (hW) pW = tdiv(sumV[v], BW[u] * den);
      int64_t pB = (hN && hW) ? (pN + pW) / 2 : (hN ? pN : pW);
      const bool adv = !off(NO_ADVPRED);
      int sN = hN ? sqlog(pN) : 0, sW = hW ? sqlog(pW) : 0, sB = (hN || hW) ? sqlog(pB) : 0;
      // Lepton's neighbour prior.
      int64_t a = N ? iabs(N[n]) : 0, l = W ? iabs(W[n]) : 0, al = NW ? iabs(NW[n]) : 0;
      int64_t prior = (N && W) ? (13 * (a + l) + 6 * al + 16) >> 5 : (N ? a : l);
      int pb = std::min(11, bitlen((uint64_t)prior));
      // Intra-block neighbours rescaled by the quantiser ratio.
      int lc0 = 99, lc1 = 99;
      // (The DC is coded after the AC, so it is never an intra-block neighbour.)
      if (u > 0 && n - 1 != 0) lc0 = sqlog(tdiv(X[n - 1] * cp.q[n - 1], den));
      // lc1 is read by the intra slot only
      if (!off(NO_INTRA) && v > 0 && n - 8 != 0) lc1 = sqlog(tdiv(X[n - 8] * cp.q[n - 8], den));
      const int rb = rem_bin(rem);
      auto sm3 = [](const int16_t* b, int i) -> int {
        if (!b) return 7;
        int x = b[i];
        return x == 0 ? 0 : (x > 0 ? std::min(x, 3) : 3 + std::min(-x, 3));
      };
      const uint64_t kc = (uint64_t)(cls * 64 + k);
      slot_[0] = &direct_[DAc::at(cls, k, rb, pb, 0)];
      if (adv) {
        slot_[1] = ac_slot(1, hash(12, kc, sN + 32 + 64 * hN, sW + 32 + 64 * hW));
        if (off(NO_SIDE_PRED)) {
          slot_[2] = slot_[3] = nullptr;
        } else {
          slot_[2] = ac_slot(2, hash(13, kc, sN + 32, std::min(rb, 3), hN));
          slot_[3] = ac_slot(3, hash(14, kc, sW + 32, std::min(rb, 3), hW));
        }
      } else {
        slot_[1] = slot_[2] = slot_[3] = nullptr;
      }
      slot_[4] = off(NO_INTRA) ? nullptr : ac_slot(4, hash(15, kc, lc0 + 128, lc1 + 128));
      slot_[5] = off(NO_RUN) ? nullptr : ac_slot(5, hash(16, kc, std::min(run, 15), rb, std::min(64 - k - rem, 12)));
      if (FL == GENERIC && (flags_ & NET_HINT))
        slot_[6] = ac_slot(6, hash(23, kc, cp.hint[((size_t)by * cp.C + bx) * 64 + n], std::min(rb, 3)));
      else
        slot_[6] = off(NO_EXACT) ? nullptr : ac_slot(6, hash(17, kc, sm3(N, n), sm3(W, n), sm3(NW, n)));
      // The co-located luma coefficient (averaged over the luma blocks a chroma block covers) in this
      // coefficient's quantiser steps: a context of slots 7-8 and of the single-counter sign.
      auto luma_rescaled = [&]() -> int64_t {
        int64_t lsum = 0;
        const Component& lc = comps_[0];
        for (int y = 0; y < lny; ++y)
          for (int x = 0; x < lnx; ++x) lsum += lc.blk(lry + y, lrx + x)[n];
        return lsum * lq[n] / (den * lny * lnx);
      };
      int64_t lres_s = 0;  // luma_rescaled() for chroma, where something reads it
      if (off(NO_AUX)) {
        slot_[7] = slot_[8] = nullptr;
        if (cls == 1 && L && off(NO_SIGN_MIX)) lres_s = luma_rescaled();
      } else if (cls == 1 && L) {
        const int64_t lres = luma_rescaled();
        lres_s = lres;
        slot_[7] = ac_slot(7, hash(18, kc, sqlog(lres) + 32, rem_bin(lnz < 0 ? 0 : lnz)));
        if (P) {
          int64_t pres = (int64_t)P[n] * pqt[n] / den;
          slot_[8] = ac_slot(8, hash(19, kc, sqlog(pres) + 32, sqlog(lres) + 32));
        } else {
          slot_[8] = ac_slot(8, hash(20, kc, sqlog(lres) + 32, adv ? sB + 32 : 0));
        }
      } else {
        slot_[7] = ac_slot(7, hash(21, kc, adv ? sB + 32 : 0, lc0 + 128, std::min(rb, 4)));
        slot_[8] = ac_slot(8, hash(22, kc, adv ? sB + 32 : 0, pb, std::min(ssum, 24) / 3));
      }
      const Sel sel{WAc::at(cls, 0, k_band(k), 0), WAc::stride<1>(), W2Ac::at(cls, 0, rb, 0), W2Ac::stride<1>(),
                    ApmAc1::at(cls, 0, k), ApmAc1::stride<1>(), ApmAc2::at(cls, 0, (adv ? sB : 0) + SQ_MAX),
                    ApmAc2::stride<1>(), &apm_ac1_, &apm_ac2_};
      DirectCtx dr;
      if (off(NO_TOP_MIX)) {
        dr.top = top_.p + TopCtx::at(cls, k, 0, 0);
        dr.pred = adv ? std::abs(sB) : 0;
      }
      if (off(NO_SIGN_MIX)) {
        // the DCT-domain prediction's sign and size, and the co-located luma (chroma) or the
        // intra-block west neighbour (luma): the sign is worth about 4 % of its bit, and these carry most
        auto clampp = [](int x) { return std::max(-(int)SIGN_PRED, std::min((int)SIGN_PRED, x)) + SIGN_PRED; };
        const int pn = clampp(adv ? sN : 0), pw = clampp(adv ? sW : 0);
        const int64_t nb = (cls == 1 && L) ? lres_s : (lc0 == 99 ? 0 : lc0);
        const int ns = nb == 0 ? 0 : nb > 0 ? 1 : 2;
        dr.sign = sign_.p + SignCtx::at(cls, k, pn, pw, ns);
      }
      int64_t val = code_value<AC>(ENC ? B[n] : 0, 16, cls, k, sel, &dr);
      if (!ENC) {
        if (val < -32768 || val > 32767) { err = true; val = 0; }
        B[n] = (int16_t)val;
      }
      X[n] = (int16_t)val;
      if (val != 0) {
        --rem;
        run = 0;
        ssum += bitlen((uint64_t)iabs(val));
        sumU[u] -= BW[v] * cp.q[n] * val;
        sumV[v] -= BW[u] * cp.q[n] * val;
        mine[u] += cp.bwq_n[n] * val;
        mine[8 + v] += cp.bwq_w[n] * val;
        const int64_t fq = val * cp.q[n];
        esum[v & 1][u] += KG[v] * fq;
        esum[2 + (u & 1)][v] += KG[u] * fq;
      } else {
        ++run;
      }
    }
    if (rem != 0) err = true;

    // ---- DC, predicted from this block's AC and the neighbours' pixels (as adaptive-1)
    code_dc(ci, cls, by, bx, B, esum, total, L ? 1 : 0, ldcres, P ? 1 : 0, pdcres);
    mine[0] += cp.bwq_n[0] * B[0];
    mine[8] += cp.bwq_w[0] * B[0];
  }

  //: The edge gradients of a block's AC-only pixels, from sums[v & 1][u] and sums[2 + (u & 1)][v] of
  //: KG[v] x q x coefficient and KG[u] x q x coefficient over its AC coefficients (summed as they are
  //: coded); any: whether the block has a nonzero AC coefficient (if not, all sums are 0 and so is g).
  static void edge_gradients(const int64_t (*sums)[8], bool any, int64_t* g /*[4][8]*/) {
    if (!any) {
      for (int i = 0; i < 32; ++i) g[i] = 0;
      return;
    }
    for (int j = 0; j < 2; ++j) {
      int e = 2 * j;
      for (int x = 0; x < 4; ++x) {
        int64_t ev_n = 0, od_n = 0, ev_f = 0, od_f = 0;
        for (int u = 0; u < 8; u += 2) {
          ev_n += K[u][x] * ((sums[e][u] + sums[e + 1][u]) >> 4);
          ev_f += K[u][x] * ((sums[e][u] - sums[e + 1][u]) >> 4);
        }
        for (int u = 1; u < 8; u += 2) {
          od_n += K[u][x] * ((sums[e][u] + sums[e + 1][u]) >> 4);
          od_f += K[u][x] * ((sums[e][u] - sums[e + 1][u]) >> 4);
        }
        g[e * 8 + x] = (ev_n + od_n) >> 6;
        g[e * 8 + 7 - x] = (ev_n - od_n) >> 6;
        g[(e + 1) * 8 + x] = (ev_f + od_f) >> 6;
        g[(e + 1) * 8 + 7 - x] = (ev_f - od_f) >> 6;
      }
    }
  }

  void code_dc(int ci, int cls, int by, int bx, int16_t* B, const int64_t (*esum)[8], int total, int haveL, int32_t ldcres, int haveP,
               int32_t pdcres) {
    Component& cp = comps_[ci];
    const size_t row = (size_t)cp.C * 32;
    int64_t* prev = cp.grad.data();
    int64_t* cur = cp.grad.data() + row;
    int64_t* g = cur + (size_t)bx * 32;
    edge_gradients(esum, total > 0, g);
    const int64_t q0 = std::max<int64_t>(cp.q[0], 1);
    const int64_t unit = 2 * q0 * 4096;
    int n = 0;
    int64_t lo = INT64_MAX, hi = INT64_MIN, sum_a = 0, sum_l = 0;
    const bool haveN = by > cp.r0, haveW = bx > 0;
    if (haveN) {
      int64_t dca = (int64_t)cp.blk(by - 1, bx)[0] * q0 * 8192;
      const int64_t* pg = prev + (size_t)bx * 32;
      for (int x = 0; x < 8; ++x) {
        int64_t e = pg[8 + x] + dca - g[x];
        sum_a += e; lo = std::min(lo, e); hi = std::max(hi, e);
      }
      n += 8;
    }
    if (haveW) {
      int64_t dcl = (int64_t)cp.blk(by, bx - 1)[0] * q0 * 8192;
      const int64_t* wg = cur + (size_t)(bx - 1) * 32;
      for (int y = 0; y < 8; ++y) {
        int64_t e = wg[24 + y] + dcl - g[16 + y];
        sum_l += e; lo = std::min(lo, e); hi = std::max(hi, e);
      }
      n += 8;
    }
    int64_t pred;
    int u1, u2;
    if (n > 0) {
      int64_t tot = sum_a + sum_l - lo - hi;
      int64_t d = (n - 2) * unit;
      pred = floordiv(2 * tot + d, 2 * d);
      u1 = std::min(11, bitlen((uint64_t)((hi - lo) / unit)));
      u2 = n == 16 ? std::min(11, bitlen((uint64_t)(iabs(sum_a - sum_l) / (8 * unit))) + 1) : 0;
    } else {
      pred = 0; u1 = 11; u2 = 11;
    }
    pred = std::max<int64_t>(-32768, std::min<int64_t>(32767, pred));
    int dN = haveN ? cp.dcres[(size_t)(by - 1) * cp.C + bx] : 0;
    int dW = haveW ? cp.dcres[(size_t)by * cp.C + bx - 1] : 0;
    slot_[0] = &direct_[DDc::at(cls, u1, u2, 0)];
    slot_[1] = dc_slot(1, hash(32, cls, u1, std::min(total, 40) / 2));
    slot_[2] = dc_slot(2, hash(33, cls, sqlog(dN) + 32, sqlog(dW) + 32, std::min(u1, 6)));
    if (cls == 1 && !off(NO_CROSS))
      slot_[3] = dc_slot(3, hash(34, ci, haveL ? sqlog(ldcres) + 32 : 99, haveP ? sqlog(pdcres) + 32 : 99, u1 / 2));
    else
      slot_[3] = dc_slot(3, hash(35, cls, u1, std::min(bitlen((uint64_t)iabs(dN)), 8), std::min(bitlen((uint64_t)iabs(dW)), 8)));
    int64_t r = ENC ? (int64_t)B[0] - pred : 0;
    const Sel sel{WDc::at(cls, 0, 0), WDc::stride<1>(), W2Dc::at(cls, 0, u2, 0), W2Dc::stride<1>(),
                  ApmDc::at(cls, 0, u1), ApmDc::stride<1>(), 0, 0, &apm_dc_, nullptr};
    r = code_value<DC>(r, 17, cls, 0, sel);
    int64_t dc = pred + r;
    if (!ENC) {
      if (dc < -32768 || dc > 32767) { err = true; dc = 0; }
      B[0] = (int16_t)dc;
    }
    cp.dcres[(size_t)by * cp.C + bx] = (int32_t)std::max<int64_t>(-1000000, std::min<int64_t>(1000000, r));
  }
};

}  // namespace mix3

// ------------------------------------------------------------------------------------------------
// Python binding: code_stripe(encode, coefficients, quant_tables, sampling, rows, data, init, flags,
// want_weights) -> (bytes | None, weights | None)

using namespace mix3;

static std::vector<Component> make_components(py::list coefs, py::list quants, py::list samp, py::list rows,
                                              bool writable) {
  size_t nc = coefs.size();
  if (nc < 1 || nc > MAX_COMPONENTS || quants.size() != nc || samp.size() != nc || rows.size() != nc)
    throw std::invalid_argument("mix3: 1 to 4 components, one quant table, sampling pair and row range each");
  std::vector<Component> comps(nc);
  for (size_t i = 0; i < nc; ++i) {
    auto a = coefs[i].cast<py::array>();
    if (!py::isinstance<py::array_t<int16_t>>(a) || a.ndim() != 3 || a.shape(2) != 64 ||
        !(a.flags() & py::array::c_style))
      throw std::invalid_argument("mix3: coefficients must be C-contiguous int16 [rows, cols, 64]");
    if (writable && !a.writeable()) throw std::invalid_argument("mix3: decode needs writable arrays");
    Component& c = comps[i];
    c.co = static_cast<int16_t*>(a.mutable_data());
    c.R = (int)a.shape(0);
    c.C = (int)a.shape(1);
    auto q = quants[i].cast<py::array_t<int64_t, py::array::c_style | py::array::forcecast>>();
    if (q.size() != 64) throw std::invalid_argument("mix3: quant tables have 64 entries");
    for (int j = 0; j < 64; ++j) {
      int64_t v = q.data()[j];
      if (v < 1 || v > 65535) throw std::invalid_argument("mix3: quantiser steps must be 1..65535");
      c.q[j] = v;
      c.bwq_n[j] = (((j >> 3) & 1) ? -1 : 1) * BW[j >> 3] * v;
      c.bwq_w[j] = ((j & 1) ? -1 : 1) * BW[j & 7] * v;
    }
    auto s = samp[i].cast<py::tuple>();
    c.hs = s[0].cast<int>();
    c.vs = s[1].cast<int>();
    if (c.hs < 1 || c.hs > 4 || c.vs < 1 || c.vs > 4) throw std::invalid_argument("mix3: sampling factors 1..4");
    auto r = rows[i].cast<py::tuple>();
    c.r0 = r[0].cast<int>();
    c.r1 = r[1].cast<int>();
    if (c.r0 < 0 || c.r1 < c.r0 || c.r1 > c.R) throw std::invalid_argument("mix3: row range outside the array");
    c.nz.assign((size_t)c.R * c.C, 0);
    c.dcres.assign((size_t)c.R * c.C, 0);
  }
  return comps;
}

template <class T>
static std::vector<T> optional_array(py::object o, size_t n, const char* what) {
  std::vector<T> v;
  if (o.is_none()) return v;
  auto a = o.cast<py::array_t<T, py::array::c_style | py::array::forcecast>>();
  if ((size_t)a.size() != n) throw std::invalid_argument(std::string("mix3: ") + what + " have the wrong size");
  v.assign(a.data(), a.data() + n);
  return v;
}

//: Runs go(kernel) on the instance compiled for these flags (the registered profiles) or the generic one.
template <class Coder, bool ENC, class Go>
static void with_kernel(std::vector<Component>& comps, const int32_t* w, const uint32_t* d, uint32_t flags, int bits,
                        bool compiled, Go&& go) {
  if (compiled && flags == FLAGS_DENSE) {
    Kernel<Coder, ENC, FLAGS_DENSE> k(comps, w, d, flags, bits);
    go(k);
  } else if (compiled && flags == FLAGS_FAST) {
    Kernel<Coder, ENC, FLAGS_FAST> k(comps, w, d, flags, bits);
    go(k);
  } else if (compiled && flags == FLAGS_FAST2) {
    Kernel<Coder, ENC, FLAGS_FAST2> k(comps, w, d, flags, bits);
    go(k);
  } else if (compiled && flags == FLAGS_LITE) {
    Kernel<Coder, ENC, FLAGS_LITE> k(comps, w, d, flags, bits);
    go(k);
  } else {
    Kernel<Coder, ENC, GENERIC> k(comps, w, d, flags, bits);
    go(k);
  }
}

static py::tuple code_stripe(bool encode, py::list coefs, py::list quants, py::list samp, py::list rows,
                             py::object data, py::object init_weights, py::object init_counters, uint32_t flags,
                             int ac_table_bits, bool want_state, bool compiled, py::object hints,
                             std::shared_ptr<Snapshot> seed, bool want_snapshot) {
  if (ac_table_bits < AC_TBITS_MIN || ac_table_bits > AC_TBITS_MAX)
    throw std::invalid_argument("mix3: AC table bits must be 12..21");
  std::vector<Component> comps = make_components(coefs, quants, samp, rows, !encode);
  // NET_HINT: one uint8 hint per coefficient, shaped as the coefficients; kept alive by `hints`.
  std::vector<py::array_t<uint8_t, py::array::c_style>> hint_arrays;
  if ((flags & NET_HINT) != 0) {
    if (hints.is_none()) throw std::invalid_argument("mix3: NET_HINT needs hints");
    py::list hl = hints.cast<py::list>();
    if (hl.size() != comps.size()) throw std::invalid_argument("mix3: one hint array per component");
    for (size_t i = 0; i < comps.size(); ++i) {
      auto h = hl[i].cast<py::array_t<uint8_t, py::array::c_style>>();
      if (h.ndim() != 3 || h.shape(0) != comps[i].R || h.shape(1) != comps[i].C || h.shape(2) != 64)
        throw std::invalid_argument("mix3: hints must be uint8 [rows, cols, 64] like the coefficients");
      comps[i].hint = h.data();
      hint_arrays.push_back(h);
    }
  }
  std::vector<int32_t> w0 = optional_array<int32_t>(init_weights, N_WEIGHTS, "initial weights");
  std::vector<uint32_t> d0 = optional_array<uint32_t>(init_counters, N_DIRECT, "initial counters");
  const int32_t* wp = w0.empty() ? nullptr : w0.data();
  const uint32_t* dp = d0.empty() ? nullptr : d0.data();
  if (encode) {
    std::vector<uint8_t> out;
    std::vector<int32_t> wout;
    std::vector<uint32_t> dout;
    std::shared_ptr<Snapshot> snap = want_snapshot ? std::make_shared<Snapshot>() : nullptr;
    {
      py::gil_scoped_release nogil;
      auto go = [&](auto& k) {
        if (seed) k.load(*seed);
        k.run();
        if (snap) k.save(*snap);
        k.coder.flush();
        out.swap(k.coder.out);
        if (want_state) {
          wout = k.weights();
          dout = k.direct();
        }
      };
      with_kernel<Encoder, true>(comps, wp, dp, flags, ac_table_bits, compiled, go);
    }
    py::object state = py::none();
    if (want_state)
      state = py::make_tuple(py::array_t<int32_t>((py::ssize_t)wout.size(), wout.data()),
                             py::array_t<uint32_t>((py::ssize_t)dout.size(), dout.data()));
    return py::make_tuple(py::bytes(reinterpret_cast<const char*>(out.data()), out.size()), state,
                          snap ? py::cast(snap) : py::none());
  }
  std::string buf = data.cast<std::string>();
  bool bad;
  std::shared_ptr<Snapshot> snap = want_snapshot ? std::make_shared<Snapshot>() : nullptr;
  {
    py::gil_scoped_release nogil;
    auto go = [&](auto& k) {
      if (seed) k.load(*seed);
      k.coder.start(reinterpret_cast<const uint8_t*>(buf.data()), buf.size());
      k.run();
      bad = k.err || k.coder.overrun();
      if (snap && !bad) k.save(*snap);
    };
    with_kernel<Decoder, false>(comps, wp, dp, flags, ac_table_bits, compiled, go);
  }
  if (bad) throw std::invalid_argument("coefficient stream is damaged");
  return py::make_tuple(py::none(), py::none(), snap ? py::cast(snap) : py::none());
}

PYBIND11_MODULE(_mix3, m) {
  m.doc() = "mix3 coefficient model kernel (see jpegshrink/model/mix3.py)";
  //: What a stripe's model learned (opaque): the start of a seeded stripe.
  py::class_<Snapshot, std::shared_ptr<Snapshot>>(m, "Snapshot");
  m.def("code_stripe", &code_stripe, py::arg("encode"), py::arg("coefficients"), py::arg("quant_tables"),
        py::arg("sampling"), py::arg("rows"), py::arg("data"), py::arg("init_weights"), py::arg("init_counters"),
        py::arg("flags"), py::arg("ac_table_bits"), py::arg("want_state"),
        // False runs the generic instance even for a compiled-for flag set (tests: same bits)
        py::arg("compiled") = true, py::arg("hints") = py::none(),
        // a Snapshot to start from instead of the trained start; whether to return the final one
        py::arg("seed") = std::shared_ptr<Snapshot>(), py::arg("want_snapshot") = false);
  m.attr("N_WEIGHTS") = (int)N_WEIGHTS;
  m.attr("N_DIRECT") = (int)N_DIRECT;
  m.attr("FLAGS") = py::dict(py::arg("advpred") = (int)NO_ADVPRED, py::arg("intra") = (int)NO_INTRA,
                             py::arg("cross") = (int)NO_CROSS, py::arg("sse") = (int)NO_SSE,
                             py::arg("mixer") = (int)NO_MIXER, py::arg("run") = (int)NO_RUN,
                             py::arg("mix2") = (int)NO_MIX2, py::arg("side_pred") = (int)NO_SIDE_PRED,
                             py::arg("count_pred") = (int)NO_COUNT_PRED, py::arg("exact") = (int)NO_EXACT,
                             py::arg("sign_mix") = (int)NO_SIGN_MIX, py::arg("top_mix") = (int)NO_TOP_MIX, py::arg("aux") = (int)NO_AUX, py::arg("net_hint") = (int)NET_HINT);
  m.attr("AC_TABLE_BITS_MAX") = (int)AC_TBITS_MAX;
  //: flag sets with a kernel instance of their own (the others run the generic one: same bits, slower)
  m.attr("COMPILED_FLAGS") = py::make_tuple((int)FLAGS_DENSE, (int)FLAGS_FAST, (int)FLAGS_FAST2, (int)FLAGS_LITE);
}
