// The passes of the adaptive coefficient model (``adaptive-1`` and the models built on it): one
// template per kind of pass, shared by encoder and decoder (the Coder policy of binary_arith.h).
//
// Each pass walks all blocks of one component in raster order and codes (encoder) or decodes (decoder)
// the symbols of its pass. All counters live in one int32 array whose layout is declared below as named
// grids. jpegshrink/model/adaptive.py describes the model itself; its format is frozen by golden files.
#pragma once

#include <vector>

#include "binary_arith.h"

namespace jsk {
namespace adaptive {

constexpr int N_HINTS = 8;
constexpr int LIMIT = 255;       // counters stop slowing down after this many hits
constexpr int NZ_BINS = 10;      // remaining-nonzero bins for the 7x7 interior (0..49 -> 0..9)
constexpr int NZ_CTX = 51;       // count contexts: neighbours' mean count 0..49 + "no neighbour"
constexpr int PRIOR_BINS = 12;   // bit length of a magnitude prediction, capped
constexpr int EXP_N = 17;        // unary exponent branches (values up to 2^17 - 1: DC residuals)
constexpr int NB_BINS = 4;       // bit length (capped) of the same edge coefficient in the neighbours
constexpr int MANT_EXPS = 18;    // exponents 0..17 of the mantissa contexts
constexpr int MANT_BITS = 17;

// Counter layout, in order; the first dimension of a hinted grid is the hint.
using CountTree = Grid<0, N_HINTS, NZ_CTX, 64>;                                              // [hint][ctx][tree node]
using InteriorExp = Grid<CountTree::end, N_HINTS, NZ_BINS, N_INTERIOR, PRIOR_BINS, EXP_N>;   // [hint][nz bin][k][prior][exp]
using InteriorSign = Grid<InteriorExp::end, N_INTERIOR, 3, 3>;                               // [k][sign above][sign left]
using Mantissa = Grid<InteriorSign::end, 64, MANT_EXPS, MANT_BITS>;                          // [pos][exp][bit]
using EdgeCount = Grid<Mantissa::end, N_HINTS, 2, 8, 8, 8>;                                  // [hint][dir][eob][nz bin][node]
using EdgeExp = Grid<EdgeCount::end, N_HINTS, 7, N_EDGES, PRIOR_BINS, NB_BINS, EXP_N>;       // [hint][rem-1][idx][prior][nb][exp]
using EdgeSign = Grid<EdgeExp::end, N_EDGES, 3, PRIOR_BINS>;                                 // [idx][pred sign][prior]
using DcExp = Grid<EdgeSign::end, N_HINTS, PRIOR_BINS, PRIOR_BINS, EXP_N>;                   // [hint][u1][u2][exp]
using DcSign = Grid<DcExp::end, PRIOR_BINS, PRIOR_BINS>;                                     // [u1][u2]
using EdgeTop = Grid<DcSign::end, N_EDGES, PRIOR_BINS, EXP_N>;                               // [idx][prior][exp]: top mantissa bit
using InteriorParent = Grid<EdgeTop::end, N_INTERIOR, PRIOR_BINS, EXP_N>;                    // [k][prior][exp]: parents of InteriorExp
using EdgeParent = Grid<InteriorParent::end, N_EDGES, PRIOR_BINS, EXP_N>;                    // [idx][prior][exp]: parents of EdgeExp
// Appended for cross-channel signs (a component with ``cross_sign``): the sign contexts above with the
// sign of the co-located reference coefficient (mean, floored) as one more dimension. Appending keeps
// every earlier index, so statistics trained for the shorter layout still start the same contexts.
using CrossSign = Grid<EdgeParent::end, N_INTERIOR, 3, 3, 3>;                                  // [k][sign above][sign left][ref sign]
using CrossEdgeSign = Grid<CrossSign::end, N_EDGES, 3, PRIOR_BINS, 3>;                        // [idx][pred sign][prior][ref sign]
constexpr i64 N_COUNTERS = CrossEdgeSign::end;

// The passes, in coding order: counts, four interior groups (ranges into INTERIOR), edges, DC.
enum PassKind { COUNTS, INTERIOR_GROUP, EDGE_PASS, DC_PASS };
struct PassSpec {
    const char* name;
    PassKind kind;
    int z0, z1;  // INTERIOR[z0:z1] for interior groups
};
constexpr PassSpec PASSES[] = {
    {"counts", COUNTS, 0, 0},           {"interior0", INTERIOR_GROUP, 0, 3},  {"interior1", INTERIOR_GROUP, 3, 10},
    {"interior2", INTERIOR_GROUP, 10, 21}, {"interior3", INTERIOR_GROUP, 21, 49}, {"edges", EDGE_PASS, 0, 0},
    {"dc", DC_PASS, 0, 0},
};
constexpr int N_PASSES = sizeof(PASSES) / sizeof(PASSES[0]);
// Hint values per block of a pass: one per coefficient it codes (counts and DC: one).
constexpr int hint_width(int pass) {
    return PASSES[pass].kind == INTERIOR_GROUP ? PASSES[pass].z1 - PASSES[pass].z0
                                               : (PASSES[pass].kind == EDGE_PASS ? N_EDGES : 1);
}

// One component's arrays, borrowed: coefficients int16 [R][C][64], quantisation table int64 [64],
// per-block nonzero interior counts and the counts still to be coded (int64 [R][C]), optional hints
// uint8 [R][C][hint_width] (null: none).
// ``ref`` (cross-channel models, a chroma component; null: none): the luma coefficients
// [R * fy][C * fx][64] with their quantiser ``ref_q`` and interior nonzero counts ``ref_nz7``
// [R * fy][C * fx]; a block covers fy x fx luma blocks. Then the hints come from there (cross_mean, cross_bucket),
// not from ``hint``.
struct Component {
    std::int16_t* co;
    const i64* q;
    i64* nz7;
    i64* nzrem;
    const std::uint8_t* hint;
    i64 R, C;
    const std::int16_t* ref = nullptr;
    const i64* ref_q = nullptr;
    const i64* ref_nz7 = nullptr;
    int fy = 1, fx = 1;
    bool cross_sign = false;  // with ref: signs in CrossSign / CrossEdgeSign (the reference's sign as context)
};

void run_pass(BinaryEncoder& coder, int pass, const Component& comp, const Counters& T);
void run_pass(BinaryDecoder& coder, int pass, const Component& comp, const Counters& T);

// One component whose passes were coded into one stream each (pass p decoded by coders[p]) or, with
// ``one_stream``, all into one stream (every coders[p] the same decoder: then a pass starts only when
// the one before has finished every row). ``ref``: index (in the same list) of the component whose
// decoded coefficients ``comp.ref`` points into, or -1; pass p of a row then also waits for pass p of
// the fy reference rows it covers.
struct PassStreams {
    Component comp;
    Counters counters;
    BinaryDecoder* coders[N_PASSES];
    bool one_stream;
    int ref;
};

// Decode every pass of every component, on ``threads`` threads (the calling one included), as a
// pipeline over block rows: pass p of a row runs once pass p-1 has finished that row. That is all a
// pass reads of earlier passes (its own block and the rows above), and no two passes share a counter
// (each grid is indexed by the coefficient it codes), so any schedule gives the same coefficients as
// running the passes one after another; only the wall time depends on the thread count. A component
// is a chain of passes, components are independent chains. Rethrows what a pass throws.
// (With one thread and one stream per component this is exactly run_pass for each pass in order.)
void decode_pipelined(const std::vector<PassStreams>& comps, int threads);

// The mean (floored) of the reference blocks chroma block (by, bx) covers at natural coefficient
// ``pos``, or of their interior nonzero counts (pos < 0); the component must have ``ref``.
i64 cross_mean(const Component& m, i64 by, i64 bx, int pos);
// The cross-channel hint (0-7) from that mean (see jpegshrink/model/cross_channel.py).
int cross_bucket(const Component& m, int pos, i64 mean);

}  // namespace adaptive
}  // namespace jsk
