/* Fused CPU kernels of the KAN feature expansion (lightning_kan.native).
 *
 * expand:     x (rows, I) -> out rows [phi(x_0) .. phi(x_{I-1}) | b(x_0) .. b(x_{I-1})]
 *             (row stride `stride`), every value written once;
 * input_grad: grad (rows, stride) and x -> grad_x (rows, I),
 *             sum_k grad[i*K + k] phi_k'(x_i) + grad[I*K + i] b'(x_i).
 *
 * One pass over the data instead of the eager path's tens of ATen calls per row chunk.
 * Called as this module's functions (the GIL is released); float32 only; rows are split
 * over torch's OpenMP threads (run_parallel). The formulas are those of the Python bases
 * (lightning_kan/bases/), which stay the reference: tests/test_native_kernels.py compares
 * both. Plain C with no torch headers, so it builds with the package (setup.py: once for
 * any x86-64, once with AVX2 + FMA) and needs no compiler at run time.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Every helper is inlined into the row loops, so each lane loop is one vectorised body. */
#define LK_INLINE static inline __attribute__((always_inline))
/* setup.py builds this file up to three times: `_kernels` for any CPU, `_kernels_avx2`
 * with -mavx2 -mfma and `_kernels_avx512` with AVX-512 too, whose lane loops run 16 wide
 * (LK_MODULE names the module); cpu_has_avx2/avx512 tell Python which to load. */
#ifndef LK_MODULE
#define LK_MODULE _kernels
#endif

enum { THREE_TERM = 0, BSPLINE = 1, RBF = 2, RSWAF = 3, FOURIER = 4, RELU = 5, BERNSTEIN = 6, WAVELET = 7 };
enum { BASE_NONE = 0, BASE_SILU = 1, BASE_IDENTITY = 2, BASE_TANH = 3 };
enum { MEXICAN_HAT = 0, MORLET = 1, DOG = 2 };

#define MAX_K 64

/* ------------------------------------------------------------ elementary functions */
/* NaN in, NaN out everywhere: comparisons are written so that a NaN falls through. */

/* Cephes expf's constants: log2(e), ln 2 in two parts (x - n ln 2 exactly enough), and
 * the polynomial p(r) of e^r = 1 + r + r^2 p(r) on [-ln2/2, ln2/2] (exp_f, exp_negative_f,
 * exp16 all use them). */
#define EXP_LOG2E 1.44269504088896341f
#define EXP_LN2_HI 0.693359375f
#define EXP_LN2_LO -2.12194440e-4f
#define EXP_P5 1.9875691500e-4f
#define EXP_P4 1.3981999507e-3f
#define EXP_P3 8.3334519073e-3f
#define EXP_P2 4.1665795894e-2f
#define EXP_P1 1.6666665459e-1f
#define EXP_P0 5.0000001201e-1f

LK_INLINE float exp_f(float x) {
    /* Cephes expf. Below -87.3 the result is 0: values under FLT_MIN are flushed (subnormal
     * arithmetic is 10-60x slower on x86, see bases/radial.py); above ln(FLT_MAX), +inf. */
    float xc = x < -87.33654f ? -87.33654f : (x > 88.72283f ? 88.72283f : x);
    float z = floorf(EXP_LOG2E * xc + 0.5f);
    float r = xc - z * EXP_LN2_HI;
    r = r - z * EXP_LN2_LO;
    float p = ((((EXP_P5 * r + EXP_P4) * r + EXP_P3) * r + EXP_P2) * r + EXP_P1) * r + EXP_P0;
    p = p * (r * r) + r + 1.0f;
    int32_t n = (int32_t)(xc == xc ? z : 0.0f); /* in [-126, 128]: 2^n as two halves */
    int32_t half = n / 2;
    union { int32_t i; float f; } first = {(half + 127) << 23}, second = {(n - half + 127) << 23};
    float result = p * first.f * second.f;
    result = x < -87.33654f ? 0.0f : result;
    result = x > 88.72283f ? INFINITY : result;
    return x == x ? result : x;
}

/* e^x for x in [-87, 0] or NaN (callers clamp): exp_f without its range checks, for the
 * Gaussian factors of the RBF and wavelet kernels. */
LK_INLINE float exp_negative_f(float x) {
    float z = rintf(EXP_LOG2E * x);
    float r = x - z * EXP_LN2_HI;
    r = r - z * EXP_LN2_LO;
    float p = ((((EXP_P5 * r + EXP_P4) * r + EXP_P3) * r + EXP_P2) * r + EXP_P1) * r + EXP_P0;
    p = p * (r * r) + r + 1.0f;
    union { int32_t i; float f; } scale = {((int32_t)(x == x ? z : 0.0f) + 127) << 23};
    return x == x ? p * scale.f : x;
}

/* e^-a for a >= 0 clamped at `most` and flushed to 0 below `flush` (bases/gaussian.py:
 * subnormal tails slow the exp and the layer's GEMMs); NaN stays NaN. */
LK_INLINE float gaussian_f(float a, float most, float flush) {
    float value = exp_negative_f(-(a > most ? most : a));
    return value < flush ? 0.0f : value;
}

LK_INLINE float tanh_f(float x) {
    /* Cephes tanhf: an odd polynomial below |x| = 0.625, 1 - 2 / (e^{2|x|} + 1) above. */
    float a = fabsf(x);
    float z = x * x;
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                    1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
    float e = exp_f(2.0f * (a > 44.0f ? 44.0f : a));
    float big = copysignf(1.0f - 2.0f / (e + 1.0f), x);
    return a < 0.625f ? small : big;
}

LK_INLINE float sigmoid_f(float x) { return 1.0f / (1.0f + exp_f(-x)); }

/* sin and cos: x = n pi/2 + r with pi/2 in three parts (Cephes' reduction; accurate for
 * |x| up to about 1e4, bounded beyond), Cephes' polynomials on [-pi/4, pi/4], the quadrant
 * from n mod 4. Branch-free, so a lane loop of it vectorises. */
LK_INLINE void sincos_f(float x, float *sin_out, float *cos_out) {
    float n = rintf(x * 0.636619772367581343f);
    float r = ((x - n * 1.5703125f) - n * 4.837512969970703125e-4f) - n * 7.54978995489188216e-8f;
    float z = r * r;
    float sr = r + r * z * ((-1.9515295891e-4f * z + 8.3321608736e-3f) * z - 1.6666654611e-1f);
    float cr = 1.0f - 0.5f * z + z * z * ((2.443315711809948e-5f * z - 1.388731625493765e-3f) * z + 4.166664568298827e-2f);
    int32_t q = (int32_t)(n == n && fabsf(n) < 1e9f ? n : 0.0f) & 3;
    float sv = (q & 1) ? cr : sr, cv = (q & 1) ? sr : cr;
    sv = (q & 2) ? -sv : sv;
    cv = ((q + 1) & 2) ? -cv : cv;
    *sin_out = x == x ? sv : x;
    *cos_out = x == x ? cv : x;
}

LK_INLINE float relu_f(float v) { return v < 0.0f ? 0.0f : v; } /* NaN stays NaN */

/* ------------------------------------------------------------------------- jobs */

typedef struct {
    int kind, base;
    int64_t rows, in_features, num_functions, stride;
    const float *x;
    float *out;        /* expand: the (rows, stride) buffer; input_grad: grad_x (rows, I) */
    const float *grad; /* input_grad: the (rows, stride) gradient of the buffer */
    const double *params;
    const float *table; /* per-function tables are laid out (table, K, I): input innermost */
    int64_t begin, end; /* this thread's rows */
} Job;

/* The constants of a job in float32, unpacked once per call (layouts: see each kind). */
typedef struct {
    int K, k, g, n, wavelet;
    float c1, c0, A[MAX_K], B[MAX_K], C[MAX_K], scale[MAX_K];
    float G, M[8][8], D[8][8], offset[8], coef[8];
    int terms;
    float w, clamp, threshold, r, limit, omega, norm;
    int shared, window;
    float lo, hi, inv_spacing, a;
    float binom[MAX_K], lower[MAX_K];
} Consts;

static void unpack(const Job *job, Consts *c) {
    const double *p = job->params;
    const int K = (int)job->num_functions;
    memset(c, 0, sizeof *c);
    c->K = K;
    switch (job->kind) {
    case THREE_TERM: /* c1, c0, (A_n, B_n, C_n) for n = 2 .. K-1, scale_0 .. scale_{K-1} */
        c->c1 = (float)p[0], c->c0 = (float)p[1];
        for (int n = 2; n < K; n++)
            c->A[n] = (float)p[3 * n - 4], c->B[n] = (float)p[3 * n - 3], c->C[n] = (float)p[3 * n - 2];
        for (int n = 0; n < K; n++) c->scale[n] = (float)p[2 + 3 * (K > 2 ? K - 2 : 0) + n];
        break;
    case BSPLINE: /* k, G, M[e][slot] row-major ((k+1)^2; D = dM/du), then T and the
                   * truncated-power terms (offset_q, coefficient_q), q < T */
        c->k = (int)p[0], c->G = (float)p[1];
        for (int e = 0; e <= c->k; e++)
            for (int slot = 0; slot <= c->k; slot++) {
                c->M[e][slot] = (float)p[2 + e * (c->k + 1) + slot];
                if (e < c->k) c->D[e][slot] = (float)((e + 1) * p[2 + (e + 1) * (c->k + 1) + slot]);
            }
        {
            const double *terms = p + 2 + (c->k + 1) * (c->k + 1);
            c->terms = (int)terms[0];
            for (int q = 0; q < c->terms && q < 8; q++)
                c->offset[q] = (float)terms[1 + q], c->coef[q] = (float)terms[1 + c->terms + q];
        }
        break;
    case RBF: /* w, the Gaussian's clamp (of z^2) and flush (bases/gaussian.py); then 1 if
               * the values go by windows (rbf_window_rows; the table then holds the centres,
               * the ratios T_s and the correction rows), x's clamp range, the centres' inverse spacing, the
               * step a = w (u_1 - u_0) of z between centres and the window's half-width M */
        c->w = (float)p[0], c->clamp = (float)p[1], c->threshold = (float)p[2];
        c->shared = (int)p[3], c->lo = (float)p[4], c->hi = (float)p[5], c->inv_spacing = (float)p[6];
        c->a = (float)p[7], c->window = (int)p[8];
        break;
    case RSWAF: /* w, the clamp (of 2|z|) and flush of e^{-2|z|}; then 1 if the table holds
                 * the shared exponentials (see block_values), x's clamp range and the
                 * centres' inverse spacing */
        c->w = (float)p[0], c->clamp = (float)p[1], c->threshold = (float)p[2];
        c->shared = (int)p[3], c->lo = (float)p[4], c->hi = (float)p[5], c->inv_spacing = (float)p[6];
        break;
    case FOURIER: /* g */
        c->g = (int)p[0];
        break;
    case RELU: /* r */
        c->r = (float)p[0];
        break;
    case BERNSTEIN: /* n, C(n, m) for m = 0..n, C(n-1, m) for m = 0..n-1 */
        c->n = (int)p[0];
        for (int m = 0; m <= c->n; m++) c->binom[m] = (float)p[1 + m];
        for (int m = 0; m < c->n; m++) c->lower[m] = (float)p[2 + c->n + m];
        break;
    case WAVELET: /* wavelet, T, Morlet's omega, the Mexican hat's norm, the Gaussian's
                   * clamp (of t^2 / 2) and flush */
        c->wavelet = (int)p[0], c->limit = (float)p[1], c->omega = (float)p[2], c->norm = (float)p[3];
        c->clamp = (float)p[4], c->threshold = (float)p[5];
        break;
    }
}

/* Work goes in blocks of L inputs of one row, one SIMD lane each: every formula below is a
 * loop over the lanes (which the compiler vectorises), and the K values of each lane are
 * then stored to (or the gradient loaded from) its K contiguous columns. */
#define L 32 /* 4 AVX2 vectors per formula step: independent work hides the latencies */
#define LANES for (int l = 0; l < L; l++)

typedef struct {
    float x[L];
    /* per-function tables of these inputs: entry (t, n, lane) is tab_at[t][n * tab_stride
     * + lane], read in place from the job's (2, K, I) table for a whole block, from the
     * copy in `tab` for a partial one */
    const float *tab_at[2];
    int64_t tab_stride;
    float tab[2][MAX_K][L];
    float lo[L], spacing[L], hi[L];
} Block;
#define TAB(b, t, n, l) ((b)->tab_at[t][(n) * (b)->tab_stride + (l)])

#ifdef __AVX2__
#include <immintrin.h>
/* r[q] (8 lanes = inputs) -> r[l] (8 elements of one input): an 8 x 8 transpose in registers. */
LK_INLINE void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int q = 0; q < 4; q++) {
        t[2 * q] = _mm256_unpacklo_ps(r[2 * q], r[2 * q + 1]);
        t[2 * q + 1] = _mm256_unpackhi_ps(r[2 * q], r[2 * q + 1]);
    }
    for (int h = 0; h < 2; h++) {
        __m256 *a = t + 4 * h, *o = u + 4 * h;
        o[0] = _mm256_shuffle_ps(a[0], a[2], _MM_SHUFFLE(1, 0, 1, 0));
        o[1] = _mm256_shuffle_ps(a[0], a[2], _MM_SHUFFLE(3, 2, 3, 2));
        o[2] = _mm256_shuffle_ps(a[1], a[3], _MM_SHUFFLE(1, 0, 1, 0));
        o[3] = _mm256_shuffle_ps(a[1], a[3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int q = 0; q < 4; q++) {
        r[q] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x20);
        r[q + 4] = _mm256_permute2f128_ps(u[q], u[q + 4], 0x31);
    }
}
/* The first `tail` (< 8) floats of a chunk: AVX-512's masked moves where the build has
 * them (AVX2's vmaskmovps store is microcoded on AMD's Zen cores), else vmaskmovps. */
LK_INLINE void store_tail(float *o, __m256i lanes, int tail, __m256 value) {
#ifdef __AVX512VL__
    (void)lanes;
    _mm256_mask_storeu_ps(o, (__mmask8)((1u << tail) - 1), value);
#else
    (void)tail;
    _mm256_maskstore_ps(o, lanes, value);
#endif
}

LK_INLINE __m256 load_tail(const float *g, __m256i lanes, int tail) {
#ifdef __AVX512VL__
    (void)lanes;
    return _mm256_maskz_loadu_ps((__mmask8)((1u << tail) - 1), g);
#else
    (void)tail;
    return _mm256_maskload_ps(g, lanes);
#endif
}

#endif

/* o[l*K + n] = v[n][l] for the first m lanes: whole 8 x 8 tiles transposed in registers
 * (AVX2 build), the rest element by element. */
LK_INLINE void store_block(float v[MAX_K][L], float *o, int64_t K, int m, int stream) {
    int64_t n0 = 0;
#ifdef __AVX2__
    for (; n0 + 8 <= K; n0 += 8)
        for (int l0 = 0; l0 < m; l0 += 8) {
            __m256 r[8];
            for (int q = 0; q < 8; q++) r[q] = _mm256_loadu_ps(v[n0 + q] + l0);
            transpose8(r);
            if (stream && l0 + 8 <= m) /* aligned, and the buffer is larger than the caches */
                for (int l = 0; l < 8; l++) _mm256_stream_ps(o + (l0 + l) * K + n0, r[l]);
            else
                for (int l = 0; l < 8 && l0 + l < m; l++) _mm256_storeu_ps(o + (l0 + l) * K + n0, r[l]);
        }
#ifdef __AVX512VL__
    /* the last partial tile too: rows past K are read (v has MAX_K rows), not stored */
    if (n0 < K && n0 + 8 <= MAX_K) {
        const int tail = (int)(K - n0);
        for (int l0 = 0; l0 < m; l0 += 8) {
            __m256 r[8];
            for (int q = 0; q < 8; q++) r[q] = _mm256_loadu_ps(v[n0 + q] + l0);
            transpose8(r);
            for (int l = 0; l < 8 && l0 + l < m; l++)
                store_tail(o + (l0 + l) * K + n0, _mm256_setzero_si256(), tail, r[l]);
        }
        return;
    }
#endif
#else
    (void)stream;
#endif
    for (int l = 0; l < m; l++)
        for (int64_t n = n0; n < K; n++) o[l * K + n] = v[n][l];
}

/* gl[n][l] = g[l*K + n] for the first m lanes, zero past them (store_block's inverse). */
LK_INLINE void load_gradient(const float *g, float gl[MAX_K][L], int64_t K, int m) {
    int64_t n0 = 0;
#ifdef __AVX2__
    if (m == L)
        for (; n0 + 8 <= K; n0 += 8)
            for (int l0 = 0; l0 < L; l0 += 8) {
                __m256 r[8];
                for (int q = 0; q < 8; q++) r[q] = _mm256_loadu_ps(g + (l0 + q) * K + n0);
                transpose8(r);
                for (int q = 0; q < 8; q++) _mm256_storeu_ps(gl[n0 + q] + l0, r[q]);
            }
#ifdef __AVX512VL__
    if (m == L && n0 < K && n0 + 8 <= MAX_K) { /* the partial tile: rows past K are zero */
        const int tail = (int)(K - n0);
        for (int l0 = 0; l0 < L; l0 += 8) {
            __m256 r[8];
            for (int q = 0; q < 8; q++) r[q] = load_tail(g + (l0 + q) * K + n0, _mm256_setzero_si256(), tail);
            transpose8(r);
            for (int q = 0; q < 8; q++) _mm256_storeu_ps(gl[n0 + q] + l0, r[q]);
        }
        return;
    }
#endif
#endif
    for (int64_t n = n0; n < K; n++)
        for (int l = 0; l < L; l++) gl[n][l] = l < m ? g[l * K + n] : 0.0f;
}

/* B-spline piece j (clamped to 0 .. G-1) of each lane's input, the offset u in it, and
 * dt/dx inside the grid (0 outside, where the values are constant). NaN: j = 0, u NaN. */
LK_INLINE void bspline_locate(const Consts *c, const Block *b, float u[L], int j[L],
                              float factor[L]) {
    LANES {
        float x = b->x[l];
        float t = (x - b->lo[l]) / b->spacing[l];
        t = t < 0.0f ? 0.0f : (t > c->G ? c->G : t);
        float jf = floorf(t);
        jf = jf == jf ? jf : 0.0f;
        jf = jf > c->G - 1.0f ? c->G - 1.0f : jf;
        u[l] = t - jf, j[l] = (int)jf;
        factor[l] = ((x >= b->lo[l] && x <= b->hi[l]) ? 1.0f : 0.0f) / b->spacing[l];
    }
}

/* The values (want_grad 0) or the slopes dphi/dx (want_grad 1) of L inputs: v[n][l].
 * B-spline slopes are left to bspline_grad (only k + 1 are non-zero). */
LK_INLINE void block_values(const Job *job, const Consts *c, const Block *b,
                                   float v[MAX_K][L], int want_grad) {
    const int K = c->K;
    switch (job->kind) {
    case THREE_TERM: { /* p_n of s = tanh x (or dp_n/dx) */
        float s[L], before[L], now[L], d_before[L], d_now[L];
        LANES {
            s[l] = tanh_f(b->x[l]);
            before[l] = 1.0f, now[l] = c->c1 * s[l] + c->c0;
            d_before[l] = 0.0f, d_now[l] = c->c1;
        }
        LANES v[0][l] = want_grad ? 0.0f : c->scale[0];
        if (K > 1) LANES v[1][l] = (want_grad ? d_now[l] : now[l]) * c->scale[1];
        for (int n = 2; n < K; n++) {
            LANES {
                float factor = c->A[n] * s[l] + c->B[n];
                float next = factor * now[l] - c->C[n] * before[l];
                float d_next = c->A[n] * now[l] + factor * d_now[l] - c->C[n] * d_before[l];
                v[n][l] = (want_grad ? d_next : next) * c->scale[n];
                before[l] = now[l], now[l] = next, d_before[l] = d_now[l], d_now[l] = d_next;
            }
        }
        if (want_grad)
            for (int n = 0; n < K; n++) LANES v[n][l] *= 1.0f - s[l] * s[l];
        break;
    }
    case BSPLINE: {
        if (c->k >= 2) { /* dense, branch-free: N(t - centre_n), N by its truncated powers */
            float t[L], factor[L];
            const float half = 0.5f * (float)(c->k - 1);
            LANES {
                float x = b->x[l], tt = (x - b->lo[l]) / b->spacing[l];
                t[l] = tt < 0.0f ? 0.0f : (tt > c->G ? c->G : tt);
                factor[l] = ((x >= b->lo[l] && x <= b->hi[l]) ? 1.0f : 0.0f) / b->spacing[l];
            }
            for (int n = 0; n < K; n++) {
                float d[L], acc[L], r[L], power[L];
                LANES d[l] = t[l] - ((float)n - half), acc[l] = 0.0f;
                for (int q = 0; q < c->terms; q++) {
                    LANES {
                        float a = c->offset[q] - fabsf(d[l]);
                        r[l] = a < 0.0f ? 0.0f : a;
                        power[l] = r[l];
                    }
                    for (int e = 1; e < c->k - want_grad; e++) LANES power[l] *= r[l];
                    LANES acc[l] += c->coef[q] * power[l];
                }
                if (want_grad) /* dN/dt = -sign(d) k sum coef (offset - |d|)_+^(k-1) */
                    LANES {
                        float sign = d[l] > 0.0f ? 1.0f : (d[l] < 0.0f ? -1.0f : 0.0f);
                        v[n][l] = -sign * (float)c->k * acc[l] * factor[l];
                    }
                else
                    LANES v[n][l] = acc[l];
            }
            break;
        }
        /* orders 0 and 1: the local Horner polynomials placed at j .. j+k */
        float u[L], factor[L], p[8][L];
        int j[L];
        bspline_locate(c, b, u, j, factor);
        for (int slot = 0; slot <= c->k; slot++)
            LANES {
                float value = c->M[c->k][slot];
                for (int e = c->k - 1; e >= 0; e--) value = value * u[l] + c->M[e][slot];
                p[slot][l] = value;
            }
        memset(v, 0, sizeof(float) * L * K);
        LANES for (int slot = 0; slot <= c->k; slot++) v[j[l] + slot][l] = p[slot][l];
        break;
    }
    case RBF: { /* exp(-z^2), z = (x - c_n) w, clamped and flushed like bases/gaussian.py */
        const float *centers = job->table;
        for (int n = 0; n < K; n++)
            LANES {
                float z = (b->x[l] - centers[n]) * c->w;
                float value = gaussian_f(z * z, c->clamp, c->threshold);
                v[n][l] = want_grad ? -2.0f * z * value * c->w : value;
            }
        break;
    }
    case RSWAF: { /* 1 - tanh(z)^2 = sech^2 z = 4a / (1 + a)^2, a = e^{-2|z|} */
        const float *centers = job->table;
        if (!c->shared) { /* one exp per value */
            for (int n = 0; n < K; n++)
                LANES {
                    float z = (b->x[l] - centers[n]) * c->w;
                    float a = gaussian_f(2.0f * fabsf(z), c->clamp, c->threshold);
                    float inverse = 1.0f / (1.0f + a), value = 4.0f * a * inverse * inverse;
                    float t = copysignf((1.0f - a) * inverse, z); /* tanh z */
                    v[n][l] = want_grad ? -2.0f * t * value * c->w : value;
                }
            break;
        }
        /* Two exps per input instead of K: e^{-|d|} = min(e^{-d}, e^{d}), and with
         * f = 2w (x - u_j) for the centre u_j nearest x,
         *     e^{-2w (x - u_n)} = e^{-f} F_j E_n,   e^{2w (x - u_n)} = e^{f} E_j F_n,
         * E_n = e^{2w u_n}, F_n = e^{-2w u_n} (the table's second and third rows, computed
         * in float64 from the stored centres). Exact for any j; j nearest keeps |f| <= w h,
         * so the result is as accurate as the direct formula. x is clamped to [lo, hi], past
         * which every value is under the flush (e^{-46}); a NaN stays NaN throughout. */
        const float *E = centers + K, *F = centers + 2 * K;
        float xc[L], P[L], Q[L], uj[L], Ej[L], Fj[L];
        int j[L];
        LANES {
            float x = b->x[l];
            xc[l] = x < c->lo ? c->lo : (x > c->hi ? c->hi : x);
            float jf = rintf((xc[l] - centers[0]) * c->inv_spacing);
            jf = jf == jf ? jf : 0.0f;
            j[l] = (int)(jf < 0.0f ? 0.0f : (jf > (float)(K - 1) ? (float)(K - 1) : jf));
        }
        /* table lookups in a loop of their own: gcc's generic tuning emits no vector gathers,
         * and a gather left in the loop below would keep its two exps scalar */
        for (int l = 0; l < L; l++) uj[l] = centers[j[l]], Ej[l] = E[j[l]], Fj[l] = F[j[l]];
        LANES {
            const float f = 2.0f * c->w * (xc[l] - uj[l]);
            P[l] = exp_f(-f) * Fj[l], Q[l] = exp_f(f) * Ej[l];
        }
        for (int n = 0; n < K; n++)
            LANES {
                float falling = P[l] * E[n], rising = Q[l] * F[n]; /* e^{-2wz}, e^{2wz} */
                float a = falling < rising ? falling : rising; /* NaN: rising, NaN */
                float sign = falling < rising ? 1.0f : -1.0f;  /* of z */
                a = a < c->threshold ? 0.0f : a;
                float inverse = 1.0f / (1.0f + a), value = 4.0f * a * inverse * inverse;
                float t = sign * (1.0f - a) * inverse; /* tanh z */
                v[n][l] = want_grad ? -2.0f * t * value * c->w : value;
            }
        break;
    }
    case FOURIER: { /* cos(m x), then sin(m x), m = 1..g, by angle addition */
        float s1[L], c1[L], s[L], co[L];
        LANES {
            sincos_f(b->x[l], &s1[l], &c1[l]);
            s[l] = s1[l], co[l] = c1[l];
        }
        for (int m = 0; m < c->g; m++)
            LANES {
                v[m][l] = want_grad ? -(m + 1) * s[l] : co[l];
                v[c->g + m][l] = want_grad ? (m + 1) * co[l] : s[l];
                float next = co[l] * c1[l] - s[l] * s1[l];
                s[l] = s[l] * c1[l] + co[l] * s1[l];
                co[l] = next;
            }
        break;
    }
    case RELU: { /* (r relu(x - a) relu(b - x))^2 */
        for (int n = 0; n < K; n++)
            LANES {
                float a = TAB(b, 0, n, l), e = TAB(b, 1, n, l), x = b->x[l];
                float rising = relu_f(x - a), falling = relu_f(e - x), product = rising * falling;
                float slope = (x > a ? falling : 0.0f) - (x < e ? rising : 0.0f);
                float scaled = product * c->r;
                v[n][l] = want_grad ? 2.0f * c->r * c->r * product * slope : scaled * scaled;
            }
        break;
    }
    case BERNSTEIN: { /* C(n, m) s^m q^(n-m); slopes n s q (B_{m-1,n-1} - B_{m,n-1}) */
        float s[L], q[L], rising[MAX_K][L], falling[MAX_K][L];
        const int n = c->n;
        LANES {
            s[l] = sigmoid_f(b->x[l]), q[l] = sigmoid_f(-b->x[l]);
            rising[0][l] = falling[0][l] = 1.0f;
        }
        for (int m = 1; m <= n; m++)
            LANES rising[m][l] = rising[m - 1][l] * s[l], falling[m][l] = falling[m - 1][l] * q[l];
        if (!want_grad) {
            for (int m = 0; m <= n; m++) LANES v[m][l] = rising[m][l] * falling[n - m][l] * c->binom[m];
        } else {
            float low[MAX_K][L];
            for (int m = 0; m < n; m++)
                LANES low[m][l] = rising[m][l] * falling[n - 1 - m][l] * c->lower[m] * n * s[l] * q[l];
            for (int m = 0; m <= n; m++)
                LANES v[m][l] = (m > 0 ? low[m - 1][l] : 0.0f) - (m < n ? low[m][l] : 0.0f);
        }
        break;
    }
    case WAVELET: { /* psi(t), t = clamp((x - shift) * inverse, +-T); one loop per wavelet */
        const float limit = c->limit, norm = c->norm, omega = c->omega;
#define WAVELET_LOOP(VALUE, SLOPE)                                                        \
        for (int n = 0; n < K; n++)                                                       \
            LANES {                                                                       \
                float inverse = TAB(b, 1, n, l);                                          \
                float t = (b->x[l] - TAB(b, 0, n, l)) * inverse;                          \
                t = t < -limit ? -limit : (t > limit ? limit : t);                        \
                float t2 = t * t, gauss = gaussian_f(0.5f * t2, c->clamp, c->threshold);  \
                v[n][l] = want_grad ? (SLOPE) * inverse : (VALUE);                        \
            }
        if (c->wavelet == MEXICAN_HAT) {
            WAVELET_LOOP(norm * (1.0f - t2) * gauss, norm * t * (t2 - 3.0f) * gauss)
        } else if (c->wavelet == DOG) {
            WAVELET_LOOP(-t * gauss, (t2 - 1.0f) * gauss)
        } else {
            for (int n = 0; n < K; n++)
                LANES {
                    float inverse = TAB(b, 1, n, l);
                    float t = (b->x[l] - TAB(b, 0, n, l)) * inverse, sw, cw;
                    t = t < -limit ? -limit : (t > limit ? limit : t);
                    float gauss = gaussian_f(0.5f * t * t, c->clamp, c->threshold);
                    sincos_f(omega * t, &sw, &cw);
                    v[n][l] = want_grad ? -(omega * sw + t * cw) * gauss * inverse : cw * gauss;
                }
        }
#undef WAVELET_LOOP
        break;
    }
    }
}

/* B-spline input gradient of one block: only the k + 1 local slopes, read at j .. j+k. */
LK_INLINE void bspline_grad(const Consts *c, const Block *b, const float *g, int64_t K,
                                   int m, float *grad_x) {
    float u[L], factor[L], acc[L] = {0};
    int j[L];
    bspline_locate(c, b, u, j, factor);
    for (int slot = 0; slot <= c->k && c->k > 0; slot++) {
        float gl[L];
        for (int l = 0; l < m; l++) gl[l] = g[l * K + j[l] + slot];
        for (int l = m; l < L; l++) gl[l] = 0.0f;
        LANES {
            float value = c->D[c->k - 1][slot];
            for (int e = c->k - 2; e >= 0; e--) value = value * u[l] + c->D[e][slot];
            acc[l] += gl[l] * value;
        }
    }
    for (int l = 0; l < m; l++) grad_x[l] = acc[l] * factor[l];
}

/* Gather block (row, i0 .. i0+m) of x and of the per-input tables; lanes past m repeat
 * the last input (their results are not stored). */
LK_INLINE void load_block(const Job *job, int64_t row, int64_t i0, int m, Block *b) {
    const int64_t I = job->in_features, K = job->num_functions;
    if (m == L) { /* a whole block: contiguous copies (vector moves), not per-lane gathers */
        memcpy(b->x, job->x + row * I + i0, sizeof b->x);
        if (job->kind == BSPLINE) {
            memcpy(b->lo, job->table + i0, sizeof b->lo);
            memcpy(b->spacing, job->table + I + i0, sizeof b->spacing);
            memcpy(b->hi, job->table + 2 * I + i0, sizeof b->hi);
        } else if (job->kind == RELU || job->kind == WAVELET) { /* read in place */
            for (int t = 0; t < 2; t++) b->tab_at[t] = job->table + t * K * I + i0;
            b->tab_stride = I;
        }
        return;
    }
    for (int t = 0; t < 2; t++) b->tab_at[t] = &b->tab[t][0][0];
    b->tab_stride = L;
    for (int l = 0; l < L; l++) {
        int64_t i = i0 + (l < m ? l : m - 1);
        b->x[l] = job->x[row * I + i];
        if (job->kind == BSPLINE) {
            b->lo[l] = job->table[i], b->spacing[l] = job->table[I + i], b->hi[l] = job->table[2 * I + i];
        } else if (job->kind == RELU || job->kind == WAVELET) {
            for (int t = 0; t < 2; t++)
                for (int64_t n = 0; n < K; n++) b->tab[t][n][l] = job->table[(t * K + n) * I + i];
        }
    }
}

#ifdef __AVX2__
LK_INLINE float sum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* One input's chunk q of piece p's values (or slopes): Horner in u over `degree + 1`
 * coefficient vectors `width` floats apart. `degree` is a constant at every call. */
LK_INLINE __m256 bspline_chunk(const float *p, __m256 u, int64_t width, int q, const int degree) {
    __m256 value = _mm256_load_ps(p + degree * width + 8 * q);
    for (int e = degree - 1; e >= 0; e--)
        value = _mm256_fmadd_ps(value, u, _mm256_load_ps(p + e * width + 8 * q));
    return value;
}

/* A block of a B-spline job loaded and located on the grid: u, j and dt/dx per lane. */
typedef struct {
    Block b;
    float u[L], factor[L];
    int j[L];
} Located;

/* Locates block (row, i0 ..) into `s`; returns how many of its L lanes are inputs. */
LK_INLINE int locate_block(const Job *job, const Consts *c, int64_t row, int64_t i0, Located *s) {
    const int m = job->in_features - i0 < L ? (int)(job->in_features - i0) : L;
    load_block(job, row, i0, m, &s->b);
    bspline_locate(c, &s->b, s->u, s->j, s->factor);
    return m;
}

/* bspline_rows' loop over rows and inputs; `degree`, `want_grad` and `stream` are constants
 * at each call, so every combination compiles to its own loop with no inner branches. */
LK_INLINE void bspline_row_loop(const Job *job, const Consts *c, const float *piece,
                                const int degree, const int want_grad, const int stream) {
    const int64_t I = job->in_features, K = job->num_functions, stride = job->stride;
    const int chunks = (int)((K + 7) / 8), tail = (int)(K - 8 * (chunks - 1));
    const int64_t width = (int64_t)chunks * 8, per_piece = (degree + 1) * width;
    /* the last chunk's lanes inside the row: that chunk is stored and loaded masked */
    const __m256i last = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    float *restrict out = job->out;
    const float *restrict grad = job->grad;
    Located s;
    for (int64_t row = job->begin; row < job->end; row++)
        for (int64_t i0 = 0; i0 < I; i0 += L) {
            const int m = locate_block(job, c, row, i0, &s);
            for (int l = 0; l < m; l++) {
                const __m256 ul = _mm256_set1_ps(s.u[l]);
                const float *p = piece + s.j[l] * per_piece;
                const int64_t at = row * stride + (i0 + l) * K;
                if (want_grad) {
                    __m256 total = _mm256_setzero_ps();
                    for (int q = 0; q < chunks - 1; q++)
                        total = _mm256_fmadd_ps(bspline_chunk(p, ul, width, q, degree),
                                                _mm256_loadu_ps(grad + at + 8 * q), total);
                    const float *g = grad + at + 8 * (chunks - 1);
                    __m256 gq = tail < 8 ? load_tail(g, last, tail) : _mm256_loadu_ps(g);
                    total = _mm256_fmadd_ps(bspline_chunk(p, ul, width, chunks - 1, degree), gq, total);
                    out[row * I + i0 + l] = sum8(total) * s.factor[l];
                    continue;
                }
                for (int q = 0; q < chunks; q++) {
                    __m256 value = bspline_chunk(p, ul, width, q, degree);
                    float *o = out + at + 8 * q;
                    if (stream) /* K % 8 == 0: no tail */
                        _mm256_stream_ps(o, value);
                    else if (q == chunks - 1 && tail < 8)
                        store_tail(o, last, tail, value);
                    else
                        _mm256_storeu_ps(o, value);
                }
            }
        }
}

/* B-spline, AVX2 builds: each input's row of K values is computed in place, in 8-column
 * chunks. piece[j][e][chunk] holds the u^e coefficients of piece j's k + 1 local
 * polynomials at their columns j .. j+k (zeros elsewhere), so one chunk is a Horner scheme
 * of vectors in u: no transposes, no scatter, no per-function work (AVX-512, in cache:
 * 1.3x faster at K = 8 and 1.6x at K = 23 than block_values' truncated powers, which the
 * baseline build keeps). want_grad 1: the slopes' Horner scheme times the gradient's
 * chunk, summed. Returns 0 if the table cannot be allocated. */
static int bspline_rows(const Job *job, const Consts *c, int want_grad, int stream) {
    const int64_t K = job->num_functions;
    const int k = c->k, G = (int)c->G, degree = k - want_grad;
    const int64_t width = (K + 7) / 8 * 8, per_piece = (degree + 1) * width;
    float *piece = aligned_alloc(32, sizeof(float) * (size_t)(G * per_piece));
    if (piece == NULL) return 0;
    for (int j = 0; j < G; j++)
        for (int e = 0; e <= degree; e++)
            for (int column = 0; column < width; column++) {
                int slot = column - j, local = slot >= 0 && slot <= k;
                float value = local ? (want_grad ? c->D[e][slot] : c->M[e][slot]) : 0.0f;
                piece[j * per_piece + e * width + column] = value;
            }
#define LK_DEGREE_CASE(D)                                                   \
    case D:                                                                 \
        if (want_grad)                                                      \
            bspline_row_loop(job, c, piece, D, 1, 0);                       \
        else if (stream)                                                    \
            bspline_row_loop(job, c, piece, D, 0, 1);                       \
        else                                                                \
            bspline_row_loop(job, c, piece, D, 0, 0);                       \
        break;
    switch (degree) {
        LK_DEGREE_CASE(0) LK_DEGREE_CASE(1) LK_DEGREE_CASE(2) LK_DEGREE_CASE(3)
        LK_DEGREE_CASE(4) LK_DEGREE_CASE(5) LK_DEGREE_CASE(6) LK_DEGREE_CASE(7)
    }
#undef LK_DEGREE_CASE
    free(piece);
    return 1;
}

#ifdef __AVX512F__
/* Cubic B-spline values with K <= 8 (G <= 5, the default grid), AVX-512 build. bspline_rows
 * spends a Horner scheme over all K columns of every input; here the four local values of
 * 16 inputs are four Horner schemes in u (one vector each), transposed in 128-bit lanes so
 * each input's four sit together, and each pair of inputs' 2K columns is one masked
 * two-source permute of them (zeros outside j .. j+3) and one 64-byte store. At 1024 x 784,
 * K = 8 on one Zen 4 core: 0.31 instead of 0.56 ns per value (benchmarks/README.md). The
 * permutes' index vectors and masks are tabulated by lane and each input's interval j (a
 * NaN input has j = 0 and NaN values, as in the torch path). Same arithmetic as
 * bspline_rows. */
static void bspline_cubic_pairs(const Job *job, const Consts *c, int stream) {
    const int64_t I = job->in_features, K = job->num_functions, stride = job->stride;
    const int G = (int)c->G;
    __m512i index[4 * 5 * 5];
    __mmask16 keep[4 * 5 * 5];
    for (int lane = 0; lane < 4; lane++)
        for (int j0 = 0; j0 < G; j0++)
            for (int j1 = 0; j1 < G; j1++) {
                int32_t at[16] = {0};
                unsigned mask = 0;
                for (int q = 0; q < 2 * K; q++) {
                    const int second = q >= K, j = second ? j1 : j0;
                    const int slot = (int)(q - second * K) - j;
                    if (slot >= 0 && slot <= 3) at[q] = 16 * second + 4 * lane + slot, mask |= 1u << q;
                }
                index[(lane * G + j0) * G + j1] = _mm512_loadu_si512(at);
                keep[(lane * G + j0) * G + j1] = (__mmask16)mask;
            }
    const __mmask16 both = (__mmask16)((1u << (2 * K)) - 1), first = (__mmask16)((1u << K) - 1);
    /* 64-byte aligned pairs: the rows, and the buffer */
    const int stream_pairs = stream && K == 8 && stride % 16 == 0 && ((uintptr_t)job->out & 63) == 0;
    __m512 M[4][4];
    for (int e = 0; e < 4; e++)
        for (int slot = 0; slot < 4; slot++) M[e][slot] = _mm512_set1_ps(c->M[e][slot]);
    Located s;
    for (int64_t row = job->begin; row < job->end; row++)
        for (int64_t i0 = 0; i0 < I; i0 += L) {
            const int m = locate_block(job, c, row, i0, &s);
            float *o = job->out + row * stride + i0 * K;
            for (int h = 0; 16 * h < m; h++) {
                const __m512 U = _mm512_loadu_ps(s.u + 16 * h);
                __m512 v[4], T[4];
                for (int slot = 0; slot < 4; slot++)
                    v[slot] = _mm512_fmadd_ps(
                        _mm512_fmadd_ps(_mm512_fmadd_ps(M[3][slot], U, M[2][slot]), U, M[1][slot]),
                        U, M[0][slot]);
                const __m512 t0 = _mm512_unpacklo_ps(v[0], v[1]), t1 = _mm512_unpackhi_ps(v[0], v[1]);
                const __m512 t2 = _mm512_unpacklo_ps(v[2], v[3]), t3 = _mm512_unpackhi_ps(v[2], v[3]);
                T[0] = _mm512_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)); /* inputs 4 lane + 0 */
                T[1] = _mm512_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)); /* ... + 1 */
                T[2] = _mm512_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)); /* ... + 2 */
                T[3] = _mm512_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)); /* ... + 3 */
                for (int lane = 0; lane < 4; lane++)
                    for (int r = 0; r < 4; r += 2) {
                        const int a = 16 * h + 4 * lane + r; /* the pair's first input */
                        if (a >= m) break;
                        const int t = (lane * G + s.j[a]) * G + s.j[a + 1];
                        const __m512 pair = _mm512_maskz_permutex2var_ps(keep[t], T[r], index[t], T[r + 1]);
                        float *to = o + a * K;
                        if (a + 1 >= m) /* the block's last input alone */
                            _mm512_mask_storeu_ps(to, first, pair);
                        else if (stream_pairs)
                            _mm512_stream_ps(to, pair);
                        else
                            _mm512_mask_storeu_ps(to, both, pair);
                    }
            }
        }
}
#endif
#endif

#ifdef __AVX512VL__
/* e^x for x in [-87, 88] or NaN, 16 lanes: exp_f's reduction and polynomial, then
 * vscalefps for the 2^n (no integer conversion, shifts or range selects). */
LK_INLINE __m512 exp16(__m512 x) {
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(EXP_LOG2E)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_LO), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(EXP_P5), r, _mm512_set1_ps(EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P0));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* r[i] (16 lanes) -> r[k] lane i = old r[i] lane k: a 16 x 16 transpose in registers. */
LK_INLINE void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4)
        for (int h = 0; h < 2; h++) {
            const __m512d a = _mm512_castps_pd(t[i + h]), b = _mm512_castps_pd(t[i + h + 2]);
            r[i + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
            r[i + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        }
    for (int i = 0; i < 16; i += 8)
        for (int k = 0; k < 4; k++) {
            t[i + k] = _mm512_shuffle_f32x4(r[i + k], r[i + k + 4], 0x88);
            t[i + k + 4] = _mm512_shuffle_f32x4(r[i + k], r[i + k + 4], 0xdd);
        }
    for (int k = 0; k < 8; k++) {
        r[k] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0x88);
        r[k + 8] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0xdd);
    }
}

#define MAX_WINDOW 32 /* rbf_window_rows: 2M + 1 <= 31 values, transposed in tiles of 16 */
/* RBF values by windows, for evenly spaced centres u_n (bases/gaussian.py's
 * gaussian_windows decides when):
 * z_n = w (x - u_n) falls by a = w (u_1 - u_0) from centre to centre, so around the centre
 * u_j nearest x
 *     g_{j+s+1} = g_{j+s} e^{2a z_j - a^2} T_s,   g_{j-s-1} = g_{j-s} e^{-2a z_j - a^2} T_s,
 * T_s = e^{-2 a^2 s} (the table after the centres, float64-computed), and every value more
 * than M centres from u_j is under the flush. So each input costs two exps, a division and
 * 2M products instead of K exps (the exp was 60% of the one-exp-per-value kernel). The
 * products start at u_j, where |z_j| <= a / 2, so their relative error (about 2s float32
 * roundings at s steps out) is largest where the values are smallest; the direct formula's
 * own rounding of z^2 is of the same size. The lattice is exact where the stored (float32)
 * centres are within a rounding of it: g_n at the stored u_n is g_n of the lattice times
 * 1 + 2 D_n z_n, D_n = w (e_n - e_j), e the centres' offsets from the lattice: a table
 * row of 2 D_n per j times z_n = z_j - (n - j) a (first order in D_n ~ 1e-6: exact in
 * float32). In the products a value is kept at least
 * FLT_MIN (no subnormal arithmetic) and flushed when stored: towards the columns that are
 * stored every factor is at most 1, so a flushed value stays flushed. Each input's row is
 * zeroed (NaN for a NaN input) and its window written at columns j - M .. j + M by masked
 * stores (masked-off columns, those outside 0 .. K-1, are not touched). x is clamped to
 * [lo, hi], past which every value is flushed. Values only: the input gradient keeps
 * block_values' formula. Blocks of L = 32 inputs, two vectors of 16. */
static void rbf_window_rows(const Job *job, const Consts *c) {
    const int64_t I = job->in_features, K = job->num_functions;
    const int M = c->window, W = 2 * M + 1, tiles = (W + 15) / 16;
    const float *ratio = job->table + K, a = c->a, a2 = c->a * c->a;
    const int width = 16 * tiles; /* the correction rows: (K, width) */
    const float *slope = ratio + M;
    __m512 steps[MAX_WINDOW / 16]; /* (t - M) a for the columns t of each tile */
    for (int q = 0; q < tiles; q++)
        steps[q] = _mm512_mul_ps(_mm512_set1_ps(a), _mm512_add_ps(_mm512_set1_ps((float)(16 * q - M)),
                                 _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)));
    float centers[64] __attribute__((aligned(64))) = {0}; /* looked up in registers */
    memcpy(centers, job->table, sizeof(float) * (size_t)K);
    const __m512 u[4] = {_mm512_load_ps(centers), _mm512_load_ps(centers + 16),
                         _mm512_load_ps(centers + 32), _mm512_load_ps(centers + 48)};
    const __m512 threshold = _mm512_set1_ps(c->threshold), w = _mm512_set1_ps(c->w);
    const __m512 clamp = _mm512_set1_ps(c->clamp), two_a = _mm512_set1_ps(2.0f * a);
    const __m512 a_squared = _mm512_set1_ps(a2), least = _mm512_set1_ps(1.17549435e-38f);
    const __m512 step_ratio = _mm512_set1_ps(M > 1 ? ratio[1] : (float)exp(-2.0 * a2));
    const __m512 lo = _mm512_set1_ps(c->lo), hi = _mm512_set1_ps(c->hi), last = _mm512_set1_ps((float)(K - 1));
    const __m512 first_center = _mm512_set1_ps(centers[0]), inv_spacing = _mm512_set1_ps(c->inv_spacing);
    Block b;
    float win[MAX_WINDOW][L] __attribute__((aligned(64)));
    int masks[MAX_WINDOW / 16][L] __attribute__((aligned(64))), first[L] __attribute__((aligned(64)));
    float zj[L] __attribute__((aligned(64)));
    for (int s = W; s < 16 * tiles; s++) /* rows the last tile reads but no store writes */
        for (int l = 0; l < L; l++) win[s][l] = 0.0f;
    for (int64_t row = job->begin; row < job->end; row++)
        for (int64_t i0 = 0; i0 < I; i0 += L) {
            const int m = I - i0 < L ? (int)(I - i0) : L;
            load_block(job, row, i0, m, &b);
            __m512 up[2], down[2], rise[2], fall[2];
            uint32_t nan_lanes = 0;
            for (int g = 0; g < 2; g++) {
                const __m512 x = _mm512_loadu_ps(b.x + 16 * g);
                nan_lanes |= (uint32_t)_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q) << (16 * g);
                const __m512 xc = _mm512_min_ps(hi, _mm512_max_ps(lo, x)); /* NaN stays */
                __m512 jf = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_sub_ps(xc, first_center), inv_spacing),
                                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                jf = _mm512_min_ps(_mm512_max_ps(jf, _mm512_setzero_ps()), last); /* NaN: 0 */
                const __m512i j = _mm512_cvttps_epi32(jf);
                const __m512 uj = _mm512_mask_blend_ps(_mm512_cmpge_epi32_mask(j, _mm512_set1_epi32(32)),
                                                       _mm512_permutex2var_ps(u[0], j, u[1]),
                                                       _mm512_permutex2var_ps(u[2], j, u[3]));
                const __m512 z = _mm512_mul_ps(_mm512_sub_ps(xc, uj), w);
                _mm512_store_ps(zj + 16 * g, z);
                __m512 g0 = exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_min_ps(clamp, _mm512_mul_ps(z, z))));
                g0 = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(g0, threshold, _CMP_NLT_UQ), g0);
                _mm512_store_ps(win[M] + 16 * g, g0);
                up[g] = _mm512_max_ps(least, g0), down[g] = up[g];
                rise[g] = exp16(_mm512_fmsub_ps(two_a, z, a_squared)); /* g_{j+1} / g_j */
                fall[g] = _mm512_div_ps(step_ratio, rise[g]);          /* g_{j-1} / g_j */
                const __m512i start = _mm512_sub_epi32(j, _mm512_set1_epi32(M));
                _mm512_store_si512(first + 16 * g, start);
                for (int q = 0; q < tiles; q++) { /* which of tile q's 16 values land in 0..K-1 */
                    const __m512i at = _mm512_add_epi32(start, _mm512_set1_epi32(16 * q));
                    const __m512i zero = _mm512_setzero_si512(), sixteen = _mm512_set1_epi32(16);
                    __m512i end = _mm512_min_epi32(_mm512_sub_epi32(_mm512_set1_epi32((int)K), at),
                                                   _mm512_set1_epi32(W - 16 * q < 16 ? W - 16 * q : 16));
                    end = _mm512_max_epi32(end, zero);
                    const __m512i begin = _mm512_min_epi32(_mm512_max_epi32(_mm512_sub_epi32(zero, at), zero), sixteen);
                    const __m512i one = _mm512_set1_epi32(1);
                    const __m512i below_end = _mm512_sub_epi32(_mm512_sllv_epi32(one, end), one);
                    const __m512i below_begin = _mm512_sub_epi32(_mm512_sllv_epi32(one, begin), one);
                    _mm512_store_si512(masks[q] + 16 * g, _mm512_andnot_si512(below_begin, below_end));
                }
            }
            for (int s = 0; s < M; s++) { /* the products, in registers from step to step */
                const __m512 t = _mm512_set1_ps(ratio[s]);
                for (int g = 0; g < 2; g++) {
                    up[g] = _mm512_max_ps(least, _mm512_mul_ps(up[g], _mm512_mul_ps(rise[g], t)));
                    down[g] = _mm512_max_ps(least, _mm512_mul_ps(down[g], _mm512_mul_ps(fall[g], t)));
                    /* flushed under the threshold; a NaN compares "not less" and stays */
                    _mm512_store_ps(win[M + s + 1] + 16 * g,
                                    _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(up[g], threshold, _CMP_NLT_UQ), up[g]));
                    _mm512_store_ps(win[M - s - 1] + 16 * g,
                                    _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(down[g], threshold, _CMP_NLT_UQ), down[g]));
                }
            }
            float *o = job->out + row * job->stride + i0 * K;
            memset(o, 0, sizeof(float) * (size_t)(m * K));
            if (nan_lanes) /* a NaN input's values are all NaN */
                for (int l = 0; l < m; l++)
                    if (b.x[l] != b.x[l])
                        for (int64_t n = 0; n < K; n++) o[l * K + n] = b.x[l];
            for (int q = 0; q < tiles; q++)
                for (int l0 = 0; l0 < m; l0 += 16) {
                    __m512 r[16];
                    for (int t = 0; t < 16; t++) r[t] = _mm512_load_ps(win[16 * q + t] + l0);
                    transpose16(r); /* r[t]: window values 16q .. 16q+15 of input l0 + t */
#pragma GCC unroll 16
                    for (int t = 0; t < 16; t++) { /* unrolled: r[t] stays in registers */
                        const int l = l0 + t;
                        if (l >= m) break;
                        /* the stored centres' offsets from the lattice, to first order */
                        const __m512 e = _mm512_mul_ps(_mm512_loadu_ps(slope + (int64_t)(first[l] + M) * width + 16 * q),
                                                       _mm512_sub_ps(_mm512_set1_ps(zj[l]), steps[q]));
                        _mm512_mask_storeu_ps(o + l * K + first[l] + 16 * q, (__mmask16)masks[q][l],
                                              _mm512_fmadd_ps(r[t], e, r[t]));
                    }
                }
        }
}
#endif

static void basis_rows(const Job *job, int want_grad) {
    const int64_t I = job->in_features, K = job->num_functions;
    Consts c;
    Block b;
    float v[MAX_K][L] __attribute__((aligned(32))), gl[MAX_K][L] __attribute__((aligned(32)));
    unpack(job, &c);
    /* Streaming (non-temporal) stores skip reading the lines they overwrite: for buffers
     * well past the caches they save a third of the memory traffic. Whole 8-float tiles
     * only, so K, the row stride and the buffer must be 32-byte aligned. */
    const int stream = !want_grad && K % 8 == 0 && job->stride % 8 == 0 &&
                       ((uintptr_t)job->out & 31) == 0 && job->rows * job->stride > (1 << 22);
#ifdef __AVX2__
#ifdef __AVX512F__
    /* K = G + 3 columns with G <= 5 intervals: the sizes bspline_cubic_pairs tabulates */
    if (job->kind == BSPLINE && !want_grad && c.k == 3 && K <= 8 && K == (int64_t)c.G + 3) {
        bspline_cubic_pairs(job, &c, stream);
        return;
    }
#endif
    if (job->kind == BSPLINE && bspline_rows(job, &c, want_grad, stream)) return;
#ifdef __AVX512VL__
    if (job->kind == RBF && !want_grad && c.shared) {
        rbf_window_rows(job, &c);
        return;
    }
#endif
#endif
    for (int64_t row = job->begin; row < job->end; row++) {
        for (int64_t i0 = 0; i0 < I; i0 += L) {
            int m = I - i0 < L ? (int)(I - i0) : L;
            load_block(job, row, i0, m, &b);
            if (!want_grad) {
                block_values(job, &c, &b, v, 0);
                store_block(v, job->out + row * job->stride + i0 * K, K, m, stream);
                continue;
            }
            const float *g = job->grad + row * job->stride + i0 * K;
            float *gx = job->out + row * I + i0;
            if (job->kind == BSPLINE && c.k < 2) {
                bspline_grad(&c, &b, g, K, m, gx);
                continue;
            }
            block_values(job, &c, &b, v, 1);
            load_gradient(g, gl, K, m);
            float acc[L] = {0};
            for (int64_t n = 0; n < K; n++) LANES acc[l] += gl[n][l] * v[n][l];
            for (int l = 0; l < m; l++) gx[l] = acc[l];
        }
    }
}

/* The base branch: b(x) into columns I*K .. of the buffer, or b'(x) grad added to grad_x.
 * One loop per activation, so each is a plain vectorised loop. */
static void base_rows(const Job *job, int want_grad) {
    const int64_t I = job->in_features, offset = I * job->num_functions;
    for (int64_t row = job->begin; row < job->end; row++) {
        const float *x = job->x + row * I;
        if (!want_grad) {
            float *o = job->out + row * job->stride + offset;
            if (job->base == BASE_SILU)
                for (int64_t i = 0; i < I; i++) o[i] = x[i] * sigmoid_f(x[i]);
            else if (job->base == BASE_TANH)
                for (int64_t i = 0; i < I; i++) o[i] = tanh_f(x[i]);
            else
                for (int64_t i = 0; i < I; i++) o[i] = x[i];
            continue;
        }
        const float *g = job->grad + row * job->stride + offset;
        float *gx = job->out + row * I;
        if (job->base == BASE_SILU)
            for (int64_t i = 0; i < I; i++) {
                float s = sigmoid_f(x[i]);
                gx[i] += g[i] * (s * (1.0f + x[i] * (1.0f - s)));
            }
        else if (job->base == BASE_TANH)
            for (int64_t i = 0; i < I; i++) {
                float t = tanh_f(x[i]);
                gx[i] += g[i] * (1.0f - t * t);
            }
        else
            for (int64_t i = 0; i < I; i++) gx[i] += g[i];
    }
}

static void run_rows(const Job *job, int want_grad) {
    basis_rows(job, want_grad);
    if (job->base != BASE_NONE) base_rows(job, want_grad);
}

/* Rows are split over `threads` OpenMP threads. Built with -fopenmp, this library needs
 * libgomp.so.1, and the dynamic linker hands it the one torch already loaded (same soname),
 * so the kernels share torch's thread pool: separate threads would fight torch's workers,
 * which spin for a while after every parallel op (2-core CPU: 1.5-2x slower). */
static int run_parallel(Job job, int want_grad, int threads) {
    if (job.kind < THREE_TERM || job.kind > WAVELET || job.num_functions > MAX_K) return -1;
    if (job.kind == BSPLINE && (job.params[0] > 7 || job.params[0] < 0)) return -1;
    if (job.kind == BERNSTEIN && job.params[0] + 1 > MAX_K) return -1;
    if (job.kind == FOURIER && 2 * job.params[0] > MAX_K) return -1;
    if (threads > job.rows) threads = (int)(job.rows > 0 ? job.rows : 1);
    if (threads < 1) threads = 1;
    const int64_t block = (job.rows + threads - 1) / threads;
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int t = 0; t < threads; t++) {
        Job part = job;
        part.begin = t * block < job.rows ? t * block : job.rows;
        part.end = (t + 1) * block < job.rows ? (t + 1) * block : job.rows;
        run_rows(&part, want_grad);
    }
#ifdef __AVX2__
    _mm_sfence(); /* streamed stores are visible before the caller reads the buffer */
#endif
    return 0;
}

/* ------------------------------------------------ local B-spline contraction */
/* A dense KAN layer's output
 *     y[r, o] = bias[o] + sum_i (sum_n phi_n(x[r, i]) W[o, i, n] + b(x[r, i]) Wb[o, i])
 * needs only the k + 1 non-zero B-splines of each input: input i of row r adds rows
 * j .. j+k of its coefficients (j: its knot interval), scaled by its local values, and its
 * base row scaled by b(x). That is (k + 2) / (K + 1) of the dense GEMM's multiply-adds
 * (5 of 24 at G = 20, k = 3), there is no (rows, I*K + I) feature buffer, and each pass
 * recomputes the local values from x. The forward goes input block by input block (rows
 * innermost): a block's coefficients are copied once into `rows` (tile-major, see
 * tile_rows), which stays in L1 while the rows stream past:
 *   forward   y (rows, O)                                         (rows split over threads)
 *   backward  grad_w (O, I, K) and grad_base (O, I) (see spline_backward), and/or
 *             grad_x (rows, I) = sum_n phi_n'(x) <g, W[:, i, n]> + b'(x) <g, Wb[:, i]>
 *             (inputs split over threads: no two threads write one float)
 * The outputs go in tiles of TILE floats, 4 vectors of 16 (GCC vector extensions: one
 * zmm, two ymm or four xmm by build), the last tile zero-padded, so there are no scalar
 * tails; `degree` and `base` are constants of each compiled loop. */
/* 64-byte vectors in every build (the baseline and AVX2 builds split them): the helpers
 * are always inlined, so GCC's -Wpsabi note about passing them by value does not apply */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float Vec16 __attribute__((vector_size(64)));
#define SPLINE_WIDTH 16 /* floats per vector */
#define SPLINE_INPUTS 8 /* the most inputs per block */
#define SPLINE_SLOTS 9  /* k + 1 <= 8 local values, then the base branch */

LK_INLINE Vec16 vec_load(const float *p) {
    Vec16 v;
    memcpy(&v, p, sizeof v);
    return v;
}
LK_INLINE void vec_store(float *p, Vec16 v) { memcpy(p, &v, sizeof v); }

typedef struct {
    const double *params;
    const float *x, *table;  /* x (rows, I); table: lo (I), spacing (I), hi (I) */
    const float *w, *wb;     /* W (O, I, K); Wb (O, I) or NULL */
    const float *g;          /* the output's gradient (rows, O) */
    const float *bias;       /* forward: (O,) or NULL */
    float *y, *grad_w, *grad_wb, *grad_x;
    float *rows_buffer;      /* this thread's block: coefficient rows, then gradient rows */
    int64_t rows, I, K, O, begin, end; /* begin/end: rows (forward) or inputs (backward) */
    int64_t tiles;                     /* output tiles of TILE floats */
    int64_t chunk;                     /* backward: rows per chunk */
    int block, base;                   /* inputs per block; BASE_* code */
} SplineJob;

/* Interval j, values v (values 1) or slopes (values 0) at slots 0 .. degree of input i
 * in rows b0 .. b0+m, and the base branch's value (or slope) in slot degree + 1; lanes
 * past m repeat the last row. */
LK_INLINE void spline_column(const SplineJob *s, const Consts *c, int64_t i, int64_t b0, int m,
                             int j[L], float v[SPLINE_SLOTS][L], const int degree, const int values) {
    Block b;
    float u[L], factor[L];
    for (int l = 0; l < L; l++) b.x[l] = s->x[(b0 + (l < m ? l : m - 1)) * s->I + i];
    LANES b.lo[l] = s->table[i], b.spacing[l] = s->table[s->I + i], b.hi[l] = s->table[2 * s->I + i];
    bspline_locate(c, &b, u, j, factor);
    for (int slot = 0; slot <= degree; slot++)
        LANES {
            const int top = values ? degree : degree - 1;
            float value = values ? c->M[top][slot] : c->D[top][slot];
            for (int e = top - 1; e >= 0; e--) value = value * u[l] + (values ? c->M[e][slot] : c->D[e][slot]);
            v[slot][l] = values ? value : value * factor[l];
        }
    float *base = v[degree + 1];
    if (s->base == BASE_SILU)
        LANES {
            float x = b.x[l], sg = sigmoid_f(x);
            base[l] = values ? x * sg : sg * (1.0f + x * (1.0f - sg));
        }
    else if (s->base == BASE_TANH)
        LANES {
            float t = tanh_f(b.x[l]);
            base[l] = values ? t : 1.0f - t * t;
        }
    else if (s->base == BASE_IDENTITY)
        LANES base[l] = values ? b.x[l] : 1.0f;
}

/* A block's coefficients in `rows`, tile-major: for input p of the block and output tile
 * t (TILE outputs, the last one zero-padded), rows n = 0 .. K of TILE floats at
 * rows + ((p * tiles + t) * (K + 1) + n) * TILE, row K the base branch. An input's
 * k + 2 rows of one tile are then at constant offsets from one pointer. */
#define TILE 64 /* outputs per tile: 4 vectors */

LK_INLINE float *tile_rows(const SplineJob *s, float *rows, int p, int64_t t) {
    return rows + (p * s->tiles + t) * (s->K + 1) * TILE;
}

/* Copy inputs i0 .. i0+inputs of W (and Wb) into `rows` (tile-major, see above). */
static void gather_rows(const SplineJob *s, int64_t i0, int inputs) {
    const int64_t I = s->I, K = s->K;
    memset(s->rows_buffer, 0, sizeof(float) * (size_t)(inputs * s->tiles * (K + 1) * TILE));
    for (int64_t o = 0; o < s->O; o++)
        for (int p = 0; p < inputs; p++) {
            float *r = tile_rows(s, s->rows_buffer, p, o / TILE) + o % TILE;
            const float *w = s->w + (o * I + i0 + p) * K;
            for (int64_t n = 0; n < K; n++) r[n * TILE] = w[n];
            if (s->wb) r[K * TILE] = s->wb[o * I + i0 + p];
        }
}

/* Write gradient rows (tile-major) into grad_w (O, I, K) and grad_wb (O, I). */
static void scatter_rows(const SplineJob *s, float *rows, int64_t i0, int inputs) {
    const int64_t I = s->I, K = s->K;
    for (int64_t o = 0; o < s->O; o++)
        for (int p = 0; p < inputs; p++) {
            const float *r = tile_rows(s, rows, p, o / TILE) + o % TILE;
            if (s->grad_w) {
                float *w = s->grad_w + (o * I + i0 + p) * K;
                for (int64_t n = 0; n < K; n++) w[n] = r[n * TILE];
            }
            if (s->grad_wb) s->grad_wb[o * I + i0 + p] = r[K * TILE];
        }
}

/* Tile t of a row of O floats into `tile` (zero past O), or a pointer to it in place. */
LK_INLINE const float *row_tile(const float *row, int64_t O, int64_t t, float tile[TILE]) {
    const int64_t o = t * TILE;
    if (o + TILE <= O) return row + o;
    memset(tile, 0, sizeof(float) * TILE);
    memcpy(tile, row + o, sizeof(float) * (size_t)(O - o));
    return tile;
}

LK_INLINE void spline_forward(const SplineJob *s, const Consts *c, const int degree, const int base) {
    const int64_t I = s->I, K = s->K, O = s->O;
    int j[SPLINE_INPUTS][L];
    float v[SPLINE_INPUTS][SPLINE_SLOTS][L], tile[TILE];
    for (int64_t row = s->begin; row < s->end; row++)
        for (int64_t o = 0; o < O; o++) s->y[row * O + o] = s->bias ? s->bias[o] : 0.0f;
    for (int64_t i0 = 0; i0 < I; i0 += s->block) {
        const int inputs = I - i0 < s->block ? (int)(I - i0) : s->block;
        gather_rows(s, i0, inputs);
        for (int64_t b0 = s->begin; b0 < s->end; b0 += L) {
            const int m = s->end - b0 < L ? (int)(s->end - b0) : L;
            for (int p = 0; p < inputs; p++) spline_column(s, c, i0 + p, b0, m, j[p], v[p], degree, 1);
            for (int l = 0; l < m; l++) {
                float *y = s->y + (b0 + l) * O;
                for (int64_t t = 0; t < s->tiles; t++) {
                    const float *in = row_tile(y, O, t, tile);
                    Vec16 acc[4], odd[4]; /* two chains per vector */
                    for (int q = 0; q < 4; q++) acc[q] = vec_load(in + SPLINE_WIDTH * q), odd[q] = (Vec16){0};
                    for (int p = 0; p < inputs; p++) {
                        const float *rows = tile_rows(s, s->rows_buffer, p, t);
                        const float *local = rows + j[p][l] * TILE;
                        for (int slot = 0; slot <= degree; slot++)
                            for (int q = 0; q < 4; q++) {
                                const Vec16 term = v[p][slot][l] * vec_load(local + slot * TILE + SPLINE_WIDTH * q);
                                if (slot % 2) odd[q] += term; else acc[q] += term;
                            }
                        if (base)
                            for (int q = 0; q < 4; q++) odd[q] += v[p][degree + 1][l] * vec_load(rows + K * TILE + SPLINE_WIDTH * q);
                    }
                    for (int q = 0; q < 4; q++) vec_store(tile + SPLINE_WIDTH * q, acc[q] + odd[q]);
                    const int64_t o = t * TILE, width = O - o < TILE ? O - o : TILE;
                    memcpy(y + o, tile, sizeof(float) * (size_t)width);
                }
            }
        }
    }
}

/* v's lanes summed as a tree of vector adds (a scalar loop over them was 40% of the input
 * gradient's time). */
LK_INLINE float vec_sum(Vec16 v) {
#if defined(__has_builtin) && __has_builtin(__builtin_shufflevector)
    typedef float Vec8 __attribute__((vector_size(32)));
    typedef float Vec4 __attribute__((vector_size(16)));
    Vec8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
             __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    Vec4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
    return (b[0] + b[2]) + (b[1] + b[3]);
#else
    float h[16], total = 0.0f;
    memcpy(h, &v, sizeof h);
    for (int q = 0; q < 16; q++) total += h[q];
    return total;
#endif
}

/* The backward, for this thread's inputs. The weight gradient's rows would be written once
 * per (row, input) if each row added into them in turn: store-bound, 3-4x the forward's
 * time. Instead the rows of a chunk are sorted by their interval j (a counting sort), and
 * the k + 1 gradient rows of one interval (and the base row) are sums kept in registers
 * over all the chunk's rows in it, added to memory once. Chunks of rows keep their part of
 * g in L2 (`chunk` rows of O floats, about 256 KiB) while each input reads it. */
LK_INLINE void spline_backward(const SplineJob *s, const Consts *c, const int degree, const int base) {
    const int64_t I = s->I, K = s->K, O = s->O, G = (int64_t)c->G, stride = s->tiles * (K + 1) * TILE;
    const int want_w = s->grad_w != NULL, want_x = s->grad_x != NULL, slots = degree + 1 + base;
    const int64_t inputs = s->end - s->begin, chunk = s->chunk;
    float *coefficients = s->rows_buffer, *gradients = coefficients + inputs * stride;
    float *values = gradients + inputs * stride, *slopes = values + chunk * SPLINE_SLOTS;
    float *grad_x = slopes + chunk * SPLINE_SLOTS, tile[TILE];
    int *interval = (int *)(grad_x + chunk), *order = interval + chunk, *start = order + chunk;
    if (want_x)
        for (int64_t p = 0; p < inputs; p++) {
            SplineJob one = *s;
            one.rows_buffer = coefficients + p * stride;
            gather_rows(&one, s->begin + p, 1);
        }
    if (want_w) memset(gradients, 0, sizeof(float) * (size_t)(inputs * stride));
    for (int64_t r0 = 0; r0 < s->rows; r0 += chunk) {
        const int64_t n = s->rows - r0 < chunk ? s->rows - r0 : chunk;
        for (int64_t p = 0; p < inputs; p++) {
            const int64_t i = s->begin + p;
            for (int64_t b0 = 0; b0 < n; b0 += L) { /* locals of the chunk's rows */
                const int m = n - b0 < L ? (int)(n - b0) : L;
                int j[L];
                float v[SPLINE_SLOTS][L];
                if (want_w) {
                    spline_column(s, c, i, r0 + b0, m, j, v, degree, 1);
                    for (int l = 0; l < m; l++)
                        for (int slot = 0; slot < slots; slot++) values[(b0 + l) * SPLINE_SLOTS + slot] = v[slot][l];
                }
                if (want_x) {
                    spline_column(s, c, i, r0 + b0, m, j, v, degree, 0);
                    for (int l = 0; l < m; l++)
                        for (int slot = 0; slot < slots; slot++) slopes[(b0 + l) * SPLINE_SLOTS + slot] = v[slot][l];
                }
                for (int l = 0; l < m; l++) interval[b0 + l] = j[l];
            }
            for (int64_t q = 0; q <= G; q++) start[q] = 0; /* counting sort by interval */
            for (int64_t b = 0; b < n; b++) start[interval[b] + 1]++;
            for (int64_t q = 0; q < G; q++) start[q + 1] += start[q];
            for (int64_t b = 0; b < n; b++) order[start[interval[b]]++] = (int)b;
            for (int64_t q = G; q > 0; q--) start[q] = start[q - 1]; /* back to the starts */
            start[0] = 0;
            if (want_x) memset(grad_x, 0, sizeof(float) * (size_t)n);
            for (int64_t t = 0; t < s->tiles; t++) {
                float *grad_rows = tile_rows(s, gradients + p * stride, 0, t);
                const float *rows = tile_rows(s, coefficients + p * stride, 0, t);
                Vec16 base_sum[4] = {{0}};
                for (int64_t q = 0; q < G; q++) {
                    if (start[q] == start[q + 1]) continue;
                    Vec16 sum[8][4] = {{{0}}};
                    const float *local = rows + q * TILE;
                    for (int r = start[q]; r < start[q + 1]; r++) {
                        const int64_t b = order[r];
                        const float *g = row_tile(s->g + (r0 + b) * O, O, t, tile);
                        Vec16 gv[4];
                        for (int e = 0; e < 4; e++) gv[e] = vec_load(g + SPLINE_WIDTH * e);
                        if (want_w) {
                            const float *a = values + b * SPLINE_SLOTS;
                            for (int slot = 0; slot <= degree; slot++)
                                for (int e = 0; e < 4; e++) sum[slot][e] += a[slot] * gv[e];
                            if (base)
                                for (int e = 0; e < 4; e++) base_sum[e] += a[degree + 1] * gv[e];
                        }
                        if (want_x) {
                            const float *d = slopes + b * SPLINE_SLOTS;
                            Vec16 slope[4] = {{0}};
                            for (int slot = 0; slot <= degree; slot++)
                                for (int e = 0; e < 4; e++) slope[e] += d[slot] * vec_load(local + slot * TILE + SPLINE_WIDTH * e);
                            if (base)
                                for (int e = 0; e < 4; e++) slope[e] += d[degree + 1] * vec_load(rows + K * TILE + SPLINE_WIDTH * e);
                            grad_x[b] += vec_sum(slope[0] * gv[0] + slope[1] * gv[1] + slope[2] * gv[2] + slope[3] * gv[3]);
                        }
                    }
                    if (want_w)
                        for (int slot = 0; slot <= degree; slot++)
                            for (int e = 0; e < 4; e++) {
                                float *at = grad_rows + (q + slot) * TILE + SPLINE_WIDTH * e;
                                vec_store(at, vec_load(at) + sum[slot][e]);
                            }
                }
                if (want_w && base)
                    for (int e = 0; e < 4; e++) {
                        float *at = grad_rows + K * TILE + SPLINE_WIDTH * e;
                        vec_store(at, vec_load(at) + base_sum[e]);
                    }
            }
            if (want_x)
                for (int64_t b = 0; b < n; b++) s->grad_x[(r0 + b) * I + i] = grad_x[b];
        }
    }
    if (want_w) scatter_rows(s, gradients, s->begin, (int)inputs);
}

static void run_spline(const SplineJob *s, int backward) {
    Consts c;
    Job job = {BSPLINE, BASE_NONE, s->rows, s->I, s->K, 0, NULL, NULL, NULL, s->params, NULL, 0, 0};
    unpack(&job, &c);
    const int base = s->base != BASE_NONE;
#define SPLINE_CASE(D, B)                     \
    if (c.k == D && base == B) {              \
        if (backward)                         \
            spline_backward(s, &c, D, B);     \
        else                                  \
            spline_forward(s, &c, D, B);      \
    }
#define SPLINE_DEGREE_CASE(D) SPLINE_CASE(D, 0) SPLINE_CASE(D, 1)
    SPLINE_DEGREE_CASE(1) SPLINE_DEGREE_CASE(2) SPLINE_DEGREE_CASE(3) SPLINE_DEGREE_CASE(4)
    SPLINE_DEGREE_CASE(5) SPLINE_DEGREE_CASE(6) SPLINE_DEGREE_CASE(7)
#undef SPLINE_DEGREE_CASE
#undef SPLINE_CASE
}

/* backward 0: y; backward 1: grad_w with grad_wb (NULL: not wanted) and/or grad_x.
 * wb NULL: no base branch (base must then be BASE_NONE). Returns 0, -1 for an invalid
 * call, -2 if a thread's block could not be allocated. */
static int lk_spline_linear(int backward, int base, const float *x, const float *w, const float *wb,
                            const float *g, const float *bias, float *y, float *grad_w, float *grad_wb,
                            float *grad_x, int64_t rows, int64_t in_features, int64_t num_functions,
                            int64_t out_features, const double *params, const float *table, int threads) {
    const int k = (int)params[0];
    if (k < 1 || k > 7 || num_functions != (int64_t)params[1] + k || num_functions > MAX_K ||
        base < BASE_NONE || base > BASE_TANH || (base != BASE_NONE) != (wb != NULL))
        return -1;
    /* forward: inputs per block, whose coefficient rows take about 16 KiB of L1 */
    const int64_t tiles = (out_features + TILE - 1) / TILE;
    const int64_t stride = tiles * (num_functions + 1) * TILE;
    int64_t block = 16384 / (stride * (int64_t)sizeof(float));
    block = block < 1 ? 1 : (block > SPLINE_INPUTS ? SPLINE_INPUTS : block);
    /* backward: chunks of rows whose part of g takes about 256 KiB of L2 */
    int64_t chunk = 65536 / out_features;
    chunk = chunk < L ? L : (chunk > rows ? rows : chunk);
    SplineJob s = {params, x, table, w, wb, g, bias, y, grad_w, grad_wb, grad_x, NULL, rows,
                   in_features, num_functions, out_features, 0, 0, tiles, chunk, (int)block, base};
    const int64_t items = backward ? in_features : rows;
    if (threads > items) threads = (int)(items > 0 ? items : 1);
    if (threads < 1) threads = 1;
    const int64_t share = (items + threads - 1) / threads;
    /* floats per thread: forward, one block's coefficient rows; backward, the coefficient and
     * gradient rows of its inputs, then per chunk row the values, slopes, grad_x, interval
     * and order (ints), then G + 1 interval starts */
    const int64_t scratch = backward ? 2 * share * stride + chunk * (2 * SPLINE_SLOTS + 3) + (int64_t)params[1] + 1
                                     : block * stride;
    int status = 0;
#pragma omp parallel for num_threads(threads) schedule(static, 1) reduction(min : status)
    for (int t = 0; t < threads; t++) {
        SplineJob part = s;
        part.begin = t * share < items ? t * share : items;
        part.end = (t + 1) * share < items ? (t + 1) * share : items;
        part.rows_buffer = malloc(sizeof(float) * (size_t)scratch);
        if (part.rows_buffer == NULL) {
            status = -2;
            continue;
        }
        run_spline(&part, backward);
        free(part.rows_buffer);
    }
    return status;
}

static int lk_expand(int kind, int base, const float *x, float *out, int64_t rows, int64_t in_features,
                     int64_t num_functions, int64_t stride, const double *params, const float *table,
                     int threads) {
    Job job = {kind, base, rows, in_features, num_functions, stride, x, out, NULL, params, table, 0, 0};
    return run_parallel(job, 0, threads);
}

static int lk_input_grad(int kind, int base, const float *x, const float *grad, float *grad_x, int64_t rows,
                         int64_t in_features, int64_t num_functions, int64_t stride, const double *params,
                         const float *table, int threads) {
    Job job = {kind, base, rows, in_features, num_functions, stride, x, grad_x, grad, params, table, 0, 0};
    return run_parallel(job, 1, threads);
}

static int lk_cpu_has_avx2(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* The `_kernels_avx512` build's instruction sets (AVX-512 F, DQ, BW, VL on top of AVX2). */
static int lk_cpu_has_avx512(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return lk_cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

/* ------------------------------------------------------------------ Python module */
/* The kernels are this module's functions, METH_FASTCALL with every argument a Python int
 * (pointers as addresses, 0 for NULL). Through ctypes a call cost 2-3 us more, and its
 * argument conversion ran on caches the GEMMs had just cycled: 40-55 us of a 2-3 ms
 * training step at 512 x 64 -> 64, K = 23, two threads (benchmarks/README.md). */
static int parse_ints(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t expected,
                      const char *name, long long *out) {
    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "%s takes %zd integer arguments, got %zd", name, expected, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        out[i] = PyLong_AsLongLong(args[i]);
        if (out[i] == -1 && PyErr_Occurred()) return -1;
    }
    return 0;
}

#define ADDRESS(T, value) ((T *)(intptr_t)(value))

/* py_NAME(ARITY integers): the kernel CALL on them (a[0] .. a[ARITY - 1]) without the GIL,
 * its status as a Python int. */
#define KERNEL_FUNCTION(NAME, ARITY, CALL)                                              \
    static PyObject *py_##NAME(PyObject *self, PyObject *const *args, Py_ssize_t nargs) { \
        long long a[ARITY];                                                             \
        int status;                                                                     \
        (void)self;                                                                     \
        if (parse_ints(args, nargs, ARITY, #NAME, a)) return NULL;                      \
        Py_BEGIN_ALLOW_THREADS                                                          \
        status = CALL;                                                                  \
        Py_END_ALLOW_THREADS                                                            \
        return PyLong_FromLong(status);                                                 \
    }

/* expand(kind, base, x, out, rows, in_features, num_functions, stride, params, table, threads) */
KERNEL_FUNCTION(expand, 11,
                lk_expand((int)a[0], (int)a[1], ADDRESS(const float, a[2]), ADDRESS(float, a[3]), a[4],
                          a[5], a[6], a[7], ADDRESS(const double, a[8]), ADDRESS(const float, a[9]),
                          (int)a[10]))

/* input_grad(kind, base, x, grad, grad_x, rows, in_features, num_functions, stride, params,
 * table, threads) */
KERNEL_FUNCTION(input_grad, 12,
                lk_input_grad((int)a[0], (int)a[1], ADDRESS(const float, a[2]), ADDRESS(const float, a[3]),
                              ADDRESS(float, a[4]), a[5], a[6], a[7], a[8], ADDRESS(const double, a[9]),
                              ADDRESS(const float, a[10]), (int)a[11]))

/* spline_linear(backward, base, x, w, wb, g, bias, y, grad_w, grad_wb, grad_x, rows,
 * in_features, num_functions, out_features, params, table, threads) */
KERNEL_FUNCTION(spline_linear, 18,
                lk_spline_linear((int)a[0], (int)a[1], ADDRESS(const float, a[2]),
                                 ADDRESS(const float, a[3]), ADDRESS(const float, a[4]),
                                 ADDRESS(const float, a[5]), ADDRESS(const float, a[6]),
                                 ADDRESS(float, a[7]), ADDRESS(float, a[8]), ADDRESS(float, a[9]),
                                 ADDRESS(float, a[10]), a[11], a[12], a[13], a[14],
                                 ADDRESS(const double, a[15]), ADDRESS(const float, a[16]),
                                 (int)a[17]))

static PyObject *py_cpu_has_avx2(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    return PyBool_FromLong(lk_cpu_has_avx2());
}

static PyObject *py_cpu_has_avx512(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    return PyBool_FromLong(lk_cpu_has_avx512());
}

#define FASTCALL(f) ((PyCFunction)(void (*)(void))(f)), METH_FASTCALL
static PyMethodDef methods[] = {
    {"expand", FASTCALL(py_expand), "Write the feature buffer of x (see the file's head)."},
    {"input_grad", FASTCALL(py_input_grad), "The input gradient from the buffer's gradient."},
    {"spline_linear", FASTCALL(py_spline_linear), "The local B-spline contraction or its gradients."},
    {"cpu_has_avx2", py_cpu_has_avx2, METH_NOARGS, "Whether this CPU runs the AVX2 + FMA build."},
    {"cpu_has_avx512", py_cpu_has_avx512, METH_NOARGS, "Whether this CPU runs the AVX-512 build."},
    {NULL, NULL, 0, NULL},
};

#define LK_STRING(name) LK_STRING_(name)
#define LK_STRING_(name) #name
#define LK_INIT(name) LK_INIT_(name)
#define LK_INIT_(name) PyInit_##name
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, LK_STRING(LK_MODULE),
                                    "Fused CPU kernels of the KAN feature expansion.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC LK_INIT(LK_MODULE)(void) { return PyModule_Create(&module); }
