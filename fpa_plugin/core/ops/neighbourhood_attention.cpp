// Fused neighbourhood softmax attention on the CPU: forward and backward in one pass over q, k, v, without
// materialising any pixel's neighbourhood. The definition (and the reference in the tests) is
// fpa_plugin/core/attention.py's `_neighbourhood_unfold`:
//
//     s[j, y, x]   = sum_c q[c, y, x] k[c, y + dy_j, x + dx_j]          (zero outside the image: the logit is 0)
//     a[:, y, x]   = softmax_j s[:, y, x]                               (zero-padded neighbours take part)
//     out[c, y, x] = sum_j a[j, y, x] v[c, y + dy_j, x + dx_j]
//
// with j running over the kernel_size^2 offsets (dy_j, dx_j) in row-major order, as F.unfold orders them.
// Backward, with g = dL/dout:
//
//     ga[j, y, x]  = sum_c g[c, y, x] v[c, y + dy_j, x + dx_j]           dL/da
//     gs[j, y, x]  = a[j, y, x] (ga[j, y, x] - sum_i a[i, y, x] ga[i, y, x])   dL/ds (softmax backward)
//     gq[c, y, x]  = sum_j gs[j, y, x] k[c, y + dy_j, x + dx_j]
//     gk[c, y, x]  = sum_j gs[j, y - dy_j, x - dx_j] q[c, y - dy_j, x - dx_j]   (gathered: no write races)
//     gv[c, y, x]  = sum_j a[j, y - dy_j, x - dx_j] g[c, y - dy_j, x - dx_j]
//
// Tensors are (N, d, H, W), float32 or float64. Each sample is done in tiles of whole rows: the tile's rows of q, k,
// v (with p = kernel_size / 2 rows around it) are copied into zero-padded buffers (`pack`), then each SIMD vector
// of pixels accumulates its J logits in registers over the channels, takes the softmax in registers, and sums
// the values. The backward does the same for dL/da, keeps dL/ds and a in zero-padded planes, and gathers gq, gk,
// gv, so that every output value is written once, by one thread. Work is split with at::parallel_for over
// (sample, band of rows); a band's backward recomputes dL/ds on the p rows around it rather than share them.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace {

//----------------------------------------------------------------------------
// SIMD vectors of 32 bytes (8 floats, 4 doubles) as GCC/Clang vector extensions: the compiler emits AVX2 with
// -mavx2, SSE pairs without, NEON on ARM. Loads and stores go through memcpy (unaligned, no aliasing issues).

template <typename T>
struct Simd {
    static constexpr int64_t lanes = 32 / sizeof(T);
    typedef T vec __attribute__((vector_size(32)));
    typedef std::conditional_t<sizeof(T) == 4, int32_t, int64_t> I;
    typedef I ivec __attribute__((vector_size(32)));

    static vec load(const T* p) { vec v; std::memcpy(&v, p, sizeof v); return v; }
    static void store(T* p, vec v) { std::memcpy(p, &v, sizeof v); }
    static vec load_n(const T* p, int64_t n) {                      // the first n lanes; the others 0
        if (n == lanes) return load(p);
        vec v{};
        for (int64_t i = 0; i < n; i++) v[i] = p[i];
        return v;
    }
    static void store_n(T* p, vec v, int64_t n) {                   // the first n lanes
        if (n == lanes) return store(p, v);
        for (int64_t i = 0; i < n; i++) p[i] = v[i];
    }
};

// exp for the softmax, of logits minus their maximum (<= 0, or nan). float: a Cephes-style polynomial (relative
// error ~2 ulp; libm's expf does not vectorise without -ffast-math, which would also break inf/nan handling);
// double (only the tests' precision): std::exp per lane.
template <typename T>
typename Simd<T>::vec exp_nonpositive(typename Simd<T>::vec x) {
    using S = Simd<T>;
    typename S::vec out;
    if constexpr (sizeof(T) == 4) {
        const typename S::vec lo = x < -87.0f ? -87.0f : x;                   // exp(-87) ~ 1.6e-38: still normal
        const typename S::vec n = (lo * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln2)
        const typename S::vec r = (lo - n * 0.693359375f) - n * -2.12194440e-4f;          // x - n ln2 (Cody-Waite)
        typename S::vec q = r * 1.9875691500e-4f + 1.3981999507e-3f;
        q = q * r + 8.3334519073e-3f;
        q = q * r + 4.1665795894e-2f;
        q = q * r + 1.6666665459e-1f;
        q = q * r + 5.0000001201e-1f;
        q = q * r * r + r + 1.0f;                                             // exp(r)
        const typename S::ivec e = __builtin_convertvector(n, typename S::ivec) << 23;    // * 2^n, n in [-126, 0]
        out = (typename S::vec)((typename S::ivec)q + e);
    } else {
        for (int64_t i = 0; i < S::lanes; i++) out[i] = std::exp(x[i]);
    }
    return x != x ? x : out;                                                  // nan stays nan
}

//----------------------------------------------------------------------------
// Packing. A tile's rows of one tensor are copied, for all channels, into a buffer whose rows are zero-padded by
// `pad` columns on both sides and up to a whole number of vectors, and whose rows outside the image are zero: then a
// neighbour (dy, dx) of a vector of pixels is one unaligned load at a fixed offset, out-of-image neighbours read
// zeros (logit 0, value 0, gradient 0, exactly the reference's zero padding) and no load leaves the buffer. The
// buffer's channel stride is not a multiple of 4 KB (the (H, W) planes' often is), which keeps the channels of one
// pixel from competing for the same L1 cache set.

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

struct Packed {
    int64_t rows, stride, pad;                                      // buffer: (channels, rows, stride)
    int64_t channel_stride() const { return rows * stride + 16; }   // + 64 or 128 bytes: see above
};

constexpr int64_t PREFETCH = 4;                                     // channels ahead

template <typename T>
void pack(const T* src, T* dst, int64_t d, int64_t H, int64_t W, int64_t row0, const Packed& P) {
    using S = Simd<T>;
    const int64_t ra = std::max<int64_t>(0, row0), rb = std::min(H, row0 + P.rows);   // rows inside the image
    for (int64_t c = 0; c < d; c++) {
        // Each channel's rows are a short stream that the hardware prefetchers catch late: fetch ahead.
        if (c + PREFETCH < d && ra < rb)
            for (const T* line = src + ((c + PREFETCH) * H + ra) * W; line < src + ((c + PREFETCH) * H + rb) * W;
                 line += 64 / sizeof(T))
                __builtin_prefetch(line);
        for (int64_t r = 0; r < P.rows; r++) {
            T* out = dst + c * P.channel_stride() + r * P.stride;
            const int64_t y = row0 + r;
            if (y < 0 || y >= H) {
                for (int64_t x = 0; x < P.stride; x++) out[x] = T(0);
                continue;
            }
            const T* in = src + (c * H + y) * W;
            for (int64_t x = 0; x < P.pad; x++) out[x] = T(0);
            for (int64_t x = 0; x < W; x += S::lanes)              // the last vector's lanes past W are 0
                S::store(out + P.pad + x, S::load_n(in + x, std::min(S::lanes, W - x)));
            for (int64_t x = P.pad + round_up(W, S::lanes); x < P.stride; x++) out[x] = T(0);
        }
    }
}

// Per-thread scratch memory, kept from call to call (at::parallel_for's OpenMP threads persist), so that the
// packed tiles are not allocated and page-faulted again for every sample.
template <typename T>
T* scratch(int slot, int64_t n) {
    static thread_local std::vector<T> buffers[5];
    if (int64_t(buffers[slot].size()) < n) buffers[slot].resize(n);
    return buffers[slot].data();
}

// Tiles: about 256 pixels (whole rows) of all channels, packed, stay in L2; blocks of CB channels of a tile
// stay in L1. Loops run over channel blocks, then over the tile's vectors of pixels, so each value loaded into L1
// serves the J neighbour offsets and the neighbouring rows; per-pixel state (J logits or weights) lives in a
// tile buffer between channel blocks, in registers within one.
inline int64_t tile_rows(int64_t W) { return std::max<int64_t>(1, 256 / W); }
constexpr int64_t CB = 4;

// acc[j] += sum over channels [c0, c1) of a[c, pixels] * b[c, the pixels' neighbour j], for one vector of pixels:
// the logits q.k of the forward and dL/d(attn) = g.v of the backward are this product. b is packed as P (padded).
template <typename T, int KS>
inline void neighbour_dots(typename Simd<T>::vec* acc, const T* a, int64_t a_channel_stride, const T* b,
                           const Packed& P, int64_t c0, int64_t c1) {
    using S = Simd<T>;
    for (int64_t c = c0; c < c1; c++) {
        const typename S::vec av = S::load(a + c * a_channel_stride);
        const T* bc = b + c * P.channel_stride();
#pragma GCC unroll 64
        for (int64_t j = 0; j < KS * KS; j++) acc[j] += av * S::load(bc + j / KS * P.stride + j % KS);
    }
}

//----------------------------------------------------------------------------
// Forward of rows [y0, y1) of one sample, KS x KS neighbourhood. q, k, v, out: (d, H, W); attn: (J, H, W).

template <typename T, int KS>
void forward_rows(const T* q, const T* k, const T* v, T* out, T* attn, int64_t d, int64_t H, int64_t W,
                  int64_t y0, int64_t y1) {
    using S = Simd<T>;
    using vec = typename S::vec;
    constexpr int64_t J = KS * KS, p = KS / 2, V = S::lanes;
    const int64_t R = tile_rows(W), Wv = round_up(W, V), HW = H * W;
    const Packed Pq{R, Wv, 0}, Pk{R + 2 * p, Wv + 2 * p, p}, Ps{R, Wv, 0};
    T *qP = scratch<T>(0, d * Pq.channel_stride()), *kP = scratch<T>(1, d * Pk.channel_stride());
    T *vP = scratch<T>(2, d * Pk.channel_stride()), *sP = scratch<T>(3, J * Ps.channel_stride());  // logits, weights
    for (int64_t ya = y0; ya < y1; ya += R) {
        const int64_t yb = std::min(y1, ya + R);
        pack(q, qP, d, H, W, ya, Pq);
        pack(k, kP, d, H, W, ya - p, Pk);
        pack(v, vP, d, H, W, ya - p, Pk);
        // Logits s[j] = sum_c q[c] k[c, neighbour j]; neighbour (dy, dx) is at + (dy + p) stride + dx + p in kP.
        for (int64_t c0 = 0; c0 < d; c0 += CB)
            for (int64_t y = ya; y < yb; y++)
                for (int64_t x0 = 0; x0 < W; x0 += V) {
                    T* sb = sP + (y - ya) * Ps.stride + x0;
                    vec s[J];
#pragma GCC unroll 64
                    for (int64_t j = 0; j < J; j++) s[j] = c0 ? S::load(sb + j * Ps.channel_stride()) : vec{};
                    neighbour_dots<T, KS>(s, qP + (y - ya) * Pq.stride + x0, Pq.channel_stride(),
                                          kP + (y - ya) * Pk.stride + x0, Pk, c0, std::min(d, c0 + CB));
#pragma GCC unroll 64
                    for (int64_t j = 0; j < J; j++) S::store(sb + j * Ps.channel_stride(), s[j]);
                }
        // Softmax over j, in registers per vector of pixels; weights to attn and back to sP.
        for (int64_t y = ya; y < yb; y++)
            for (int64_t x0 = 0; x0 < W; x0 += V) {
                T* sb = sP + (y - ya) * Ps.stride + x0;
                vec s[J], m, z = {};
#pragma GCC unroll 64
                for (int64_t j = 0; j < J; j++) s[j] = S::load(sb + j * Ps.channel_stride());
                m = s[0];
#pragma GCC unroll 64
                for (int64_t j = 1; j < J; j++) m = s[j] > m ? s[j] : m;
#pragma GCC unroll 64
                for (int64_t j = 0; j < J; j++) z += s[j] = exp_nonpositive<T>(s[j] - m);
                z = T(1) / z;
#pragma GCC unroll 64
                for (int64_t j = 0; j < J; j++) {
                    S::store(sb + j * Ps.channel_stride(), s[j] *= z);
                    S::store_n(attn + j * HW + y * W + x0, s[j], std::min(V, W - x0));
                }
            }
        // out[c] = sum_j a[j] v[c, neighbour j].
        for (int64_t c0 = 0; c0 < d; c0 += CB)
            for (int64_t y = ya; y < yb; y++)
                for (int64_t x0 = 0; x0 < W; x0 += V) {
                    const T* sb = sP + (y - ya) * Ps.stride + x0;
                    vec a[J];
#pragma GCC unroll 64
                    for (int64_t j = 0; j < J; j++) a[j] = S::load(sb + j * Ps.channel_stride());
                    for (int64_t c = c0; c < std::min(d, c0 + CB); c++) {
                        const T* vc = vP + c * Pk.channel_stride() + (y - ya) * Pk.stride + x0;
                        vec o = {};
#pragma GCC unroll 64
                        for (int64_t j = 0; j < J; j++) o += a[j] * S::load(vc + j / KS * Pk.stride + j % KS);
                        S::store_n(out + c * HW + y * W + x0, o, std::min(V, W - x0));
                    }
                }
    }
}

//----------------------------------------------------------------------------
// Backward of rows [y0, y1) of one sample. g, q, k, v, gq, gk, gv: (d, H, W); attn: (J, H, W).
// Pass A, over the band and p rows around it (the halo, recomputed rather than shared between threads): gs = dL/ds
// and a into zero-padded (J, rows, stride) planes. Pass B, over the band: gq gathers from the neighbours; gk and gv
// from the pixels that see (y, x): the pixel at -(dy, dx), whose neighbour j is (y, x).

template <typename T, int KS>
void backward_rows(const T* g, const T* q, const T* k, const T* v, const T* attn, T* gq, T* gk, T* gv,
                   int64_t d, int64_t H, int64_t W, int64_t y0, int64_t y1) {
    using S = Simd<T>;
    using vec = typename S::vec;
    constexpr int64_t J = KS * KS, p = KS / 2, V = S::lanes;
    const int64_t R = tile_rows(W), Wv = round_up(W, V), HW = H * W;
    const Packed Pg{R, Wv, 0}, Pk{R + 2 * p, Wv + 2 * p, p};
    const Packed Pj{y1 - y0 + 2 * p, Wv + 2 * p, p};                // gs, a planes: rows y0 - p .. y1 + p
    T *gsP = scratch<T>(0, J * Pj.channel_stride()), *aP = scratch<T>(1, J * Pj.channel_stride());
    std::fill(gsP, gsP + J * Pj.channel_stride(), T(0));
    std::fill(aP, aP + J * Pj.channel_stride(), T(0));
    T *bufA = scratch<T>(2, d * Pk.channel_stride()), *bufB = scratch<T>(3, d * Pk.channel_stride());
    T *bufC = scratch<T>(4, d * Pk.channel_stride());

    const int64_t r0 = std::max<int64_t>(0, y0 - p), r1 = std::min(H, y1 + p);
    for (int64_t ya = r0; ya < r1; ya += R) {                           // pass A
        const int64_t yb = std::min(r1, ya + R);
        T *gP = bufA, *vP = bufB;
        pack(g, gP, d, H, W, ya, Pg);
        pack(v, vP, d, H, W, ya - p, Pk);
        // dL/da[j] = sum_c g[c] v[c, neighbour j], accumulated in the gs plane.
        for (int64_t c0 = 0; c0 < d; c0 += CB)
            for (int64_t y = ya; y < yb; y++)
                for (int64_t x0 = 0; x0 < W; x0 += V) {
                    T* gb = gsP + (y - y0 + p) * Pj.stride + x0 + p;
                    vec ga[J];
#pragma GCC unroll 64
                    for (int64_t j = 0; j < J; j++) ga[j] = c0 ? S::load(gb + j * Pj.channel_stride()) : vec{};
                    neighbour_dots<T, KS>(ga, gP + (y - ya) * Pg.stride + x0, Pg.channel_stride(),
                                          vP + (y - ya) * Pk.stride + x0, Pk, c0, std::min(d, c0 + CB));
#pragma GCC unroll 64
                    for (int64_t j = 0; j < J; j++)                 // lanes past W: the pads, which stay 0
                        S::store_n(gb + j * Pj.channel_stride(), ga[j], std::min(V, W - x0));
                }
        // gs = a (dL/da - sum_j a dL/da): softmax backward, in place; a into its plane.
        for (int64_t y = ya; y < yb; y++)
            for (int64_t x0 = 0; x0 < W; x0 += V) {
                const int64_t n = std::min(V, W - x0);
                T *gb = gsP + (y - y0 + p) * Pj.stride + x0 + p, *ab = aP + (gb - gsP);
                vec ga[J], a[J], dot = {};
#pragma GCC unroll 64
                for (int64_t j = 0; j < J; j++) {
                    ga[j] = S::load(gb + j * Pj.channel_stride());
                    dot += (a[j] = S::load_n(attn + j * HW + y * W + x0, n)) * ga[j];
                }
#pragma GCC unroll 64
                for (int64_t j = 0; j < J; j++) {                   // lanes past W stay 0: out-of-image sources
                    S::store_n(gb + j * Pj.channel_stride(), a[j] * (ga[j] - dot), n);
                    S::store_n(ab + j * Pj.channel_stride(), a[j], n);
                }
            }
    }

    for (int64_t ya = y0; ya < y1; ya += R) {                           // pass B
        const int64_t yb = std::min(y1, ya + R);
        T *kP = bufA, *qP = bufB, *gP = bufC;
        pack(k, kP, d, H, W, ya - p, Pk);
        pack(q, qP, d, H, W, ya - p, Pk);
        pack(g, gP, d, H, W, ya - p, Pk);
        for (int64_t c0 = 0; c0 < d; c0 += CB) {
            const int64_t cb = std::min(CB, d - c0);
            // gq[c] = sum_j gs[j] k[c, neighbour j].
            for (int64_t y = ya; y < yb; y++)
                for (int64_t x0 = 0; x0 < W; x0 += V) {
                    const T* gb = gsP + (y - y0 + p) * Pj.stride + x0 + p;
                    vec gs[J];
#pragma GCC unroll 64
                    for (int64_t j = 0; j < J; j++) gs[j] = S::load(gb + j * Pj.channel_stride());
                    for (int64_t c = c0; c < c0 + cb; c++) {
                        const T* kc = kP + c * Pk.channel_stride() + (y - ya) * Pk.stride + x0;
                        vec acc = {};
#pragma GCC unroll 64
                        for (int64_t j = 0; j < J; j++) acc += gs[j] * S::load(kc + j / KS * Pk.stride + j % KS);
                        S::store_n(gq + c * HW + y * W + x0, acc, std::min(V, W - x0));
                    }
                }
            // gk[c] = sum_j gs[j] q[c] and gv[c] = sum_j a[j] g[c], both at the pixel -(dy_j, dx_j) away.
            for (int64_t y = ya; y < yb; y++)
                for (int64_t x0 = 0; x0 < W; x0 += V) {
                    const int64_t kb = c0 * Pk.channel_stride() + (y - ya) * Pk.stride + x0;
                    const int64_t jb = (y - y0) * Pj.stride + x0;
                    vec acck[CB] = {}, accv[CB] = {};
#pragma GCC unroll 64
                    for (int64_t j = 0; j < J; j++) {
                        const int64_t src = (KS - 1 - j / KS) * Pk.stride + KS - 1 - j % KS;   // Pk, Pj: same stride
                        const vec gsj = S::load(gsP + j * Pj.channel_stride() + jb + src);
                        const vec aj = S::load(aP + j * Pj.channel_stride() + jb + src);
#pragma GCC unroll 4
                        for (int64_t cc = 0; cc < CB; cc++)
                            if (cc < cb) {
                                acck[cc] += gsj * S::load(qP + kb + cc * Pk.channel_stride() + src);
                                accv[cc] += aj * S::load(gP + kb + cc * Pk.channel_stride() + src);
                            }
                    }
#pragma GCC unroll 4
                    for (int64_t cc = 0; cc < cb; cc++) {
                        S::store_n(gk + (c0 + cc) * HW + y * W + x0, acck[cc], std::min(V, W - x0));
                        S::store_n(gv + (c0 + cc) * HW + y * W + x0, accv[cc], std::min(V, W - x0));
                    }
                }
        }
    }
}

//----------------------------------------------------------------------------
// Work split: (sample, band of rows) items. With many samples a band is the whole image (no halo); with fewer
// samples than threads the rows are cut into bands so that every thread has work. Small problems (the tests'
// gradcheck) run on one thread: waking the others would cost more than the work.

struct Split {
    int64_t bands, band, grain;                                     // bands per sample, rows per band, items/thread

    Split(int64_t N, int64_t d, int64_t H, int64_t W, int64_t J) {
        const int64_t threads = at::get_num_threads();
        bands = std::max<int64_t>(1, std::min<int64_t>(H, (2 * threads + N - 1) / N));
        band = (H + bands - 1) / bands;
        const int64_t work = d * band * W * J;                      // multiply-adds per item and pass
        grain = std::max<int64_t>(1, (1 << 18) / std::max<int64_t>(1, work));
    }
};

// Calls f(std::integral_constant<int, kernel_size>) for the kernel sizes compiled in.
template <typename F>
void with_kernel_size(int64_t kernel_size, F&& f) {
    switch (kernel_size) {
        case 1: return f(std::integral_constant<int, 1>());
        case 3: return f(std::integral_constant<int, 3>());
        case 5: return f(std::integral_constant<int, 5>());
        case 7: return f(std::integral_constant<int, 7>());
    }
}

// Outputs are written once, right after allocation, so a large one costs a page fault per 4 KB page, which can
// cost as much as the kernel itself. Ask for transparent huge pages (2 MB) on its 2 MB-aligned interior, as torch
// does for all allocations with THP_MEM_ALLOC_ENABLE=1; a no-op where THP is unavailable or disabled.
torch::Tensor new_output(at::IntArrayRef sizes, const torch::Tensor& like) {
    auto t = torch::empty(sizes, like.options());
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    constexpr uintptr_t huge = 2 << 20;
    const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data_ptr()), end = begin + t.nbytes();
    const uintptr_t a = (begin + huge - 1) / huge * huge, b = end / huge * huge;
    if (b > a) madvise(reinterpret_cast<void*>(a), b - a, MADV_HUGEPAGE);
#endif
    return t;
}

void check_inputs(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t kernel_size) {
    TORCH_CHECK(q.device().is_cpu(), "neighbourhood_attention (fused): CPU tensors only");
    TORCH_CHECK(q.dim() == 4, "neighbourhood_attention (fused): q must be (N, d, H, W), got ", q.sizes());
    TORCH_CHECK(k.sizes() == q.sizes() && v.sizes() == q.sizes(), "neighbourhood_attention (fused): q, k, v shapes ",
                q.sizes(), k.sizes(), v.sizes());
    TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(),
                "neighbourhood_attention (fused): q, k, v dtypes differ");
    TORCH_CHECK(kernel_size == 1 || kernel_size == 3 || kernel_size == 5 || kernel_size == 7,
                "neighbourhood_attention (fused): kernel_size 1, 3, 5 or 7, got ", kernel_size);
}

std::vector<torch::Tensor> forward(torch::Tensor q, torch::Tensor k, torch::Tensor v, int64_t kernel_size) {
    check_inputs(q, k, v, kernel_size);
    q = q.contiguous(), k = k.contiguous(), v = v.contiguous();
    const int64_t N = q.size(0), d = q.size(1), H = q.size(2), W = q.size(3), J = kernel_size * kernel_size;
    auto out = new_output(q.sizes(), q), attn = new_output({N, J, H, W}, q);
    const Split split(N, d, H, W, J);
    const int64_t bands = split.bands, band = split.band;
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "neighbourhood_attention_forward", [&] {
        const scalar_t *qp = q.data_ptr<scalar_t>(), *kp = k.data_ptr<scalar_t>(), *vp = v.data_ptr<scalar_t>();
        scalar_t *op = out.data_ptr<scalar_t>(), *ap = attn.data_ptr<scalar_t>();
        at::parallel_for(0, N * bands, split.grain, [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; i++) {
                const int64_t n = i / bands, y0 = (i % bands) * band, y1 = std::min(H, y0 + band);
                const int64_t off = n * d * H * W;
                if (y0 >= y1) continue;                              // the last bands of a short image
                with_kernel_size(kernel_size, [&](auto ks) {
                    forward_rows<scalar_t, ks()>(qp + off, kp + off, vp + off, op + off, ap + n * J * H * W, d, H, W,
                                                 y0, y1);
                });
            }
        });
    });
    return {out, attn};
}

std::vector<torch::Tensor> backward(torch::Tensor g, torch::Tensor q, torch::Tensor k, torch::Tensor v,
                                    torch::Tensor attn, int64_t kernel_size) {
    check_inputs(q, k, v, kernel_size);
    g = g.contiguous(), q = q.contiguous(), k = k.contiguous(), v = v.contiguous(), attn = attn.contiguous();
    const int64_t N = q.size(0), d = q.size(1), H = q.size(2), W = q.size(3), J = kernel_size * kernel_size;
    TORCH_CHECK(g.sizes() == q.sizes() && g.scalar_type() == q.scalar_type(), "neighbourhood_attention (fused): g");
    TORCH_CHECK(attn.sizes() == torch::IntArrayRef({N, J, H, W}) && attn.scalar_type() == q.scalar_type(),
                "neighbourhood_attention (fused): attn must be (N, J, H, W), got ", attn.sizes());
    auto gq = new_output(q.sizes(), q), gk = new_output(q.sizes(), q), gv = new_output(q.sizes(), q);
    const Split split(N, d, H, W, J);
    const int64_t bands = split.bands, band = split.band;
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "neighbourhood_attention_backward", [&] {
        const scalar_t *gp = g.data_ptr<scalar_t>(), *qp = q.data_ptr<scalar_t>(), *kp = k.data_ptr<scalar_t>();
        const scalar_t *vp = v.data_ptr<scalar_t>(), *ap = attn.data_ptr<scalar_t>();
        scalar_t *gqp = gq.data_ptr<scalar_t>(), *gkp = gk.data_ptr<scalar_t>(), *gvp = gv.data_ptr<scalar_t>();
        at::parallel_for(0, N * bands, split.grain, [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; i++) {
                const int64_t n = i / bands, y0 = (i % bands) * band, y1 = std::min(H, y0 + band);
                const int64_t off = n * d * H * W;
                if (y0 >= y1) continue;                              // the last bands of a short image
                with_kernel_size(kernel_size, [&](auto ks) {
                    backward_rows<scalar_t, ks()>(gp + off, qp + off, kp + off, vp + off, ap + n * J * H * W,
                                                  gqp + off, gkp + off, gvp + off, d, H, W, y0, y1);
                });
            }
        });
    });
    return {gq, gk, gv};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("forward", &forward, "Neighbourhood attention forward: (q, k, v, kernel_size) -> (out, attn)");
    m.def("backward", &backward, "Neighbourhood attention backward: (g, q, k, v, attn, kernel_size) -> (gq, gk, gv)");
}
