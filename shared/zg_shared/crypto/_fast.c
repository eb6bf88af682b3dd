// SPDX-License-Identifier: Apache-2.0
/*
 * zg_shared.crypto._fast: the fast route for Poseidon and EdDSA-Poseidon over BabyJubJub.
 *
 * The pure-Python modules are the reference; this file only makes the same functions
 * fast, and the tests compare the two. Parts:
 *   - BN254 scalar field in Montgomery form, 4 x 64-bit limbs (unsigned __int128).
 *   - Poseidon in the optimised form (cheap partial rounds); its constants are derived
 *     in Python (poseidon_params.py) and loaded here once per width.
 *   - BabyJubJub in extended twisted Edwards coordinates with precomputed tables: a
 *     fixed one for Base8, and a KeyTable object per public key (the gateway caches it).
 *   - BLAKE-512 for key derivation and signing nonces.
 * Field multiplication uses BMI2/ADX inline assembly when the CPU has it (checked at
 * import), else portable C with unsigned __int128.
 * Nothing here is constant-time: verification handles public data only; signing leaks
 * timing about the nonce (see docs/signatures.md).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef unsigned __int128 u128;
typedef struct { uint64_t l[4]; } fe;

/* ------------------------------------------------------------------ field */

static const uint64_t MOD[4] = {
    0x43e1f593f0000001ULL, 0x2833e84879b97091ULL, 0xb85045b68181585dULL, 0x30644e72e131a029ULL};
/* Subgroup order l of BabyJubJub. */
static const uint64_t SUBORDER[4] = {
    0x677297dc392126f1ULL, 0xab3eedb83920ee0aULL, 0x370a08b6d0302b0bULL, 0x060c89ce5c263405ULL};

static uint64_t MOD_NINV;   /* -MOD^-1 mod 2^64 */
static fe FE_ONE;           /* R mod p: 1 in Montgomery form */
static fe FE_R2;            /* R^2 mod p: converts into Montgomery form */
static fe FE_A, FE_D;       /* the curve's a and d */
/* Arithmetic runs on the isomorphic curve -x'^2 + y^2 = 1 + d' x'^2 y^2 with
 * x' = ALPHA * x, ALPHA^2 = -a, d' = -d/a: a = -1 allows the cheaper (7M) additions
 * of Hisil-Wong-Carter-Dawson. Still complete, since d' is a non-square. */
static const uint64_t ALPHA_RAW[4] = {
    0x6c7be2c1d8b2d768ULL, 0x74a5f6ca321ea117ULL, 0x2c7ac0ce84e61177ULL, 0x0e0ff35005d6e54bULL};
static fe FE_ALPHA, FE_ALPHA_INV, FE_2D;  /* ALPHA, 1/ALPHA, 2d' */

static inline int raw_geq(const uint64_t *a, const uint64_t *b) {
    for (int i = 3; i >= 0; i--) {
        if (a[i] != b[i]) return a[i] > b[i];
    }
    return 1;
}

static inline void raw_sub(uint64_t *a, const uint64_t *b) {
    u128 borrow = 0;
    for (int i = 0; i < 4; i++) {
        u128 d = (u128)a[i] - b[i] - borrow;
        a[i] = (uint64_t)d;
        borrow = (d >> 64) & 1;
    }
}

static inline void fe_add(fe *r, const fe *a, const fe *b) {
    /* p < 2^254, so the sum fits in 256 bits. */
    u128 c = 0;
    for (int i = 0; i < 4; i++) {
        c = (u128)a->l[i] + b->l[i] + (c >> 64);
        r->l[i] = (uint64_t)c;
    }
    if (raw_geq(r->l, MOD)) raw_sub(r->l, MOD);
}

static inline void fe_sub(fe *r, const fe *a, const fe *b) {
    u128 borrow = 0;
    for (int i = 0; i < 4; i++) {
        u128 d = (u128)a->l[i] - b->l[i] - borrow;
        r->l[i] = (uint64_t)d;
        borrow = (d >> 64) & 1;
    }
    if (borrow) {
        u128 c = 0;
        for (int i = 0; i < 4; i++) {
            c = (u128)r->l[i] + MOD[i] + (c >> 64);
            r->l[i] = (uint64_t)c;
        }
    }
}

static inline void fe_neg(fe *r, const fe *a) {
    fe zero = {{0, 0, 0, 0}};
    fe_sub(r, &zero, a);
}

/* Montgomery multiplication, CIOS without the extra carry words: valid because the
 * modulus's top limb is below 2^63 - 1, so intermediate values stay under 2p. */
static inline void fe_mul_c(fe *r, const fe *a, const fe *b) {
    uint64_t t0 = 0, t1 = 0, t2 = 0, t3 = 0;
    for (int i = 0; i < 4; i++) {
        uint64_t bi = b->l[i];
        u128 x, y;
        x = (u128)a->l[0] * bi + t0;
        uint64_t m = (uint64_t)x * MOD_NINV;
        y = (u128)m * MOD[0] + (uint64_t)x;
        x = (u128)a->l[1] * bi + t1 + (uint64_t)(x >> 64);
        y = (u128)m * MOD[1] + (uint64_t)x + (uint64_t)(y >> 64);
        t0 = (uint64_t)y;
        x = (u128)a->l[2] * bi + t2 + (uint64_t)(x >> 64);
        y = (u128)m * MOD[2] + (uint64_t)x + (uint64_t)(y >> 64);
        t1 = (uint64_t)y;
        x = (u128)a->l[3] * bi + t3 + (uint64_t)(x >> 64);
        y = (u128)m * MOD[3] + (uint64_t)x + (uint64_t)(y >> 64);
        t2 = (uint64_t)y;
        t3 = (uint64_t)(x >> 64) + (uint64_t)(y >> 64);
    }
    r->l[0] = t0; r->l[1] = t1; r->l[2] = t2; r->l[3] = t3;
    if (raw_geq(r->l, MOD)) raw_sub(r->l, MOD);
}


#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_ADX_ASM 1
/* The same CIOS loop with BMI2/ADX instructions (mulx, and two carry chains with adcx
 * and adox): about 1.8x faster than the portable C. Chosen at import when the CPU has
 * them; the assembler accepts them whatever -march is, so no special build flags.
 * One iteration: t (5 words) += a * b[i], then add m * p to clear the low word; the
 * caller rotates the register names instead of shifting. */
#define ADX_CIOS_ITER(BI, T0, T1, T2, T3, T4) \
  "movq " BI ", %%rdx\n\t" \
  "xorl %%eax, %%eax\n\t" \
  "mulxq 0(%[a]), %%r8, %%r9\n\t"  "adoxq %%r8, " T0 "\n\t" "adcxq %%r9, " T1 "\n\t" \
  "mulxq 8(%[a]), %%r8, %%r9\n\t"  "adoxq %%r8, " T1 "\n\t" "adcxq %%r9, " T2 "\n\t" \
  "mulxq 16(%[a]), %%r8, %%r9\n\t" "adoxq %%r8, " T2 "\n\t" "adcxq %%r9, " T3 "\n\t" \
  "mulxq 24(%[a]), %%r8, %%r9\n\t" "adoxq %%r8, " T3 "\n\t" "adcxq %%rax, %%r9\n\t" "adoxq %%r9, " T4 "\n\t" \
  "movq " T0 ", %%rdx\n\t" "imulq %[ninv], %%rdx\n\t" \
  "xorl %%eax, %%eax\n\t" \
  "mulxq %[p0], %%r8, %%r9\n\t" "adoxq %%r8, " T0 "\n\t" "adcxq %%r9, " T1 "\n\t" \
  "mulxq %[p1], %%r8, %%r9\n\t" "adoxq %%r8, " T1 "\n\t" "adcxq %%r9, " T2 "\n\t" \
  "mulxq %[p2], %%r8, %%r9\n\t" "adoxq %%r8, " T2 "\n\t" "adcxq %%r9, " T3 "\n\t" \
  "mulxq %[p3], %%r8, %%r9\n\t" "adoxq %%r8, " T3 "\n\t" "adcxq %%r9, " T4 "\n\t" \
  "movl $0, %%eax\n\t" "adoxq %%rax, " T4 "\n\t"

static inline void fe_mul_adx(fe *r, const fe *a, const fe *b) {
    uint64_t t0 = 0, t1 = 0, t2 = 0, t3 = 0, t4 = 0;
    __asm__(
        ADX_CIOS_ITER("0(%[b])", "%[t0]", "%[t1]", "%[t2]", "%[t3]", "%[t4]")
        "xorl %k[t0], %k[t0]\n\t"
        ADX_CIOS_ITER("8(%[b])", "%[t1]", "%[t2]", "%[t3]", "%[t4]", "%[t0]")
        "xorl %k[t1], %k[t1]\n\t"
        ADX_CIOS_ITER("16(%[b])", "%[t2]", "%[t3]", "%[t4]", "%[t0]", "%[t1]")
        "xorl %k[t2], %k[t2]\n\t"
        ADX_CIOS_ITER("24(%[b])", "%[t3]", "%[t4]", "%[t0]", "%[t1]", "%[t2]")
        : [t0] "+&r"(t0), [t1] "+&r"(t1), [t2] "+&r"(t2), [t3] "+&r"(t3), [t4] "+&r"(t4)
        : [a] "r"(a->l), [b] "r"(b->l), [ninv] "m"(MOD_NINV), [p0] "m"(MOD[0]), [p1] "m"(MOD[1]),
          [p2] "m"(MOD[2]), [p3] "m"(MOD[3])
        : "rax", "rdx", "r8", "r9", "cc", "memory");
    /* The registers rotated: the result is (t4, t0, t1, t2). */
    r->l[0] = t4;
    r->l[1] = t0;
    r->l[2] = t1;
    r->l[3] = t2;
    if (raw_geq(r->l, MOD)) raw_sub(r->l, MOD);
}
#endif

static int USE_ADX;

static inline void fe_mul(fe *r, const fe *a, const fe *b) {
#ifdef HAVE_ADX_ASM
    if (USE_ADX) {
        fe_mul_adx(r, a, b);
        return;
    }
#endif
    fe_mul_c(r, a, b);
}

static inline int fe_eq(const fe *a, const fe *b) { return memcmp(a, b, sizeof(fe)) == 0; }

static inline int fe_is_zero(const fe *a) {
    return (a->l[0] | a->l[1] | a->l[2] | a->l[3]) == 0;
}

static void fe_from_raw(fe *r, const uint64_t raw[4]) {
    fe a;
    memcpy(a.l, raw, sizeof a.l);
    fe_mul(r, &a, &FE_R2);
}

static void fe_to_raw(uint64_t raw[4], const fe *a) {
    fe one = {{1, 0, 0, 0}}, r;
    fe_mul(&r, a, &one);
    memcpy(raw, r.l, sizeof r.l);
}

/* acc += a * b (the caller keeps acc below 2^511). */
static inline void wide_mul_add(uint64_t acc[8], const fe *a, const fe *b) {
    for (int i = 0; i < 4; i++) {
        u128 c = 0;
        uint64_t bi = b->l[i];
        for (int j = 0; j < 4; j++) {
            c = (u128)a->l[j] * bi + acc[i + j] + (uint64_t)(c >> 64);
            acc[i + j] = (uint64_t)c;
        }
        uint64_t carry = (uint64_t)(c >> 64);
        for (int k = i + 4; k < 8 && carry; k++) {
            u128 s2 = (u128)acc[k] + carry;
            acc[k] = (uint64_t)s2;
            carry = (uint64_t)(s2 >> 64);
        }
    }
}

/* Montgomery reduction of a sum of at most 8 products of canonical values: the sum is
 * below 8p^2 < 2^511, so nothing overflows and the result is below 3p. */
static inline void wide_reduce(fe *r, uint64_t t[8]) {
    for (int i = 0; i < 4; i++) {
        uint64_t m = t[i] * MOD_NINV;
        u128 c = 0;
        for (int j = 0; j < 4; j++) {
            c = (u128)m * MOD[j] + t[i + j] + (uint64_t)(c >> 64);
            t[i + j] = (uint64_t)c;
        }
        for (int k = i + 4; k < 8 && (c >> 64); k++) {
            c = (u128)t[k] + (uint64_t)(c >> 64);
            t[k] = (uint64_t)c;
        }
    }
    memcpy(r->l, &t[4], sizeof r->l);
    while (raw_geq(r->l, MOD)) raw_sub(r->l, MOD);
}

#define LAZY_MAX_TERMS 8

/* Squaring: the six cross products once, doubled, plus the squares (10 multiplications
 * instead of 16 before the reduction). */
static inline void fe_sqr(fe *r, const fe *a) {
#ifdef HAVE_ADX_ASM
    if (USE_ADX) {
        fe_mul_adx(r, a, a);
        return;
    }
#endif
    const uint64_t a0 = a->l[0], a1 = a->l[1], a2 = a->l[2], a3 = a->l[3];
    uint64_t t[8];
    u128 c;
    c = (u128)a0 * a1;
    t[1] = (uint64_t)c;
    c = (u128)a0 * a2 + (uint64_t)(c >> 64);
    t[2] = (uint64_t)c;
    c = (u128)a0 * a3 + (uint64_t)(c >> 64);
    t[3] = (uint64_t)c;
    t[4] = (uint64_t)(c >> 64);
    c = (u128)a1 * a2 + t[3];
    t[3] = (uint64_t)c;
    c = (u128)a1 * a3 + t[4] + (uint64_t)(c >> 64);
    t[4] = (uint64_t)c;
    t[5] = (uint64_t)(c >> 64);
    c = (u128)a2 * a3 + t[5];
    t[5] = (uint64_t)c;
    t[6] = (uint64_t)(c >> 64);
    t[7] = t[6] >> 63;
    for (int k = 6; k > 1; k--) t[k] = (t[k] << 1) | (t[k - 1] >> 63);
    t[1] <<= 1;
    t[0] = 0;
    uint64_t carry = 0;
    for (int i = 0; i < 4; i++) {
        u128 sq = (u128)a->l[i] * a->l[i];
        c = (u128)t[2 * i] + (uint64_t)sq + carry;
        t[2 * i] = (uint64_t)c;
        c = (u128)t[2 * i + 1] + (uint64_t)(sq >> 64) + (uint64_t)(c >> 64);
        t[2 * i + 1] = (uint64_t)c;
        carry = (uint64_t)(c >> 64);
    }
    wide_reduce(r, t);
}

/* a^(p-2): variable-time, fine for the public values it is used on. */
static void fe_inv(fe *r, const fe *a) {
    uint64_t e[4];
    memcpy(e, MOD, sizeof e);
    e[0] -= 2;  /* MOD[0] ends in ...01, no borrow */
    fe acc = FE_ONE;
    for (int i = 255; i >= 0; i--) {
        fe_sqr(&acc, &acc);
        if ((e[i / 64] >> (i % 64)) & 1) fe_mul(&acc, &acc, a);
    }
    *r = acc;
}

static void fe_init_constants(void) {
    /* Newton's iteration doubles the correct low bits each step: 1 -> 64 in 6 steps. */
    uint64_t inv = 1;
    for (int i = 0; i < 6; i++) inv *= 2 - MOD[0] * inv;
    MOD_NINV = (uint64_t)0 - inv;
    /* R mod p and R^2 mod p by doubling 1 modulo p. */
    uint64_t x[4] = {1, 0, 0, 0};
    for (int i = 0; i < 512; i++) {
        uint64_t carry = x[3] >> 63;
        x[3] = (x[3] << 1) | (x[2] >> 63);
        x[2] = (x[2] << 1) | (x[1] >> 63);
        x[1] = (x[1] << 1) | (x[0] >> 63);
        x[0] <<= 1;
        if (carry || raw_geq(x, MOD)) raw_sub(x, MOD);
        if (i == 255) memcpy(FE_ONE.l, x, sizeof x);
    }
    memcpy(FE_R2.l, x, sizeof x);
    uint64_t a[4] = {168700, 0, 0, 0}, d[4] = {168696, 0, 0, 0};
    fe_from_raw(&FE_A, a);
    fe_from_raw(&FE_D, d);
}

/* Returns -1 if ALPHA is not a square root of -a (a broken build). */
static int curve_init_constants(void) {
    fe t, ainv;
    fe_from_raw(&FE_ALPHA, ALPHA_RAW);
    fe_sqr(&t, &FE_ALPHA);
    fe_add(&t, &t, &FE_A);
    if (!fe_is_zero(&t)) return -1;
    fe_inv(&FE_ALPHA_INV, &FE_ALPHA);
    fe_inv(&ainv, &FE_A);
    fe_mul(&t, &FE_D, &ainv);
    fe_neg(&t, &t);
    fe_add(&FE_2D, &t, &t);
    return 0;
}

/* ------------------------------------------------------- Python int glue */

/* Read a non-negative int below 2^256 into little-endian limbs; -1 with an exception set. */
static int int_to_raw(PyObject *obj, uint64_t raw[4]) {
    if (!PyLong_Check(obj) || PyBool_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "expected int, got %s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    unsigned char buf[32];
#if PY_VERSION_HEX >= 0x030D0000
    Py_ssize_t n = PyLong_AsNativeBytes(obj, buf, 32,
                                        Py_ASNATIVEBYTES_LITTLE_ENDIAN |
                                            Py_ASNATIVEBYTES_UNSIGNED_BUFFER |
                                            Py_ASNATIVEBYTES_REJECT_NEGATIVE);
    if (n < 0) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError)) return -1;
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "expected a non-negative int");
        return -1;
    }
    if (n > 32) {
        PyErr_SetString(PyExc_ValueError, "int does not fit in 256 bits");
        return -1;
    }
#else
    if (_PyLong_Sign(obj) < 0) {
        PyErr_SetString(PyExc_ValueError, "expected a non-negative int");
        return -1;
    }
    if (_PyLong_AsByteArray((PyLongObject *)obj, buf, 32, 1, 0) < 0) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "int does not fit in 256 bits");
        return -1;
    }
#endif
    for (int i = 0; i < 4; i++) {
        uint64_t v = 0;
        for (int j = 7; j >= 0; j--) v = (v << 8) | buf[i * 8 + j];
        raw[i] = v;
    }
    return 0;
}

static PyObject *raw_to_int(const uint64_t raw[4]) {
    unsigned char buf[32];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++) buf[i * 8 + j] = (unsigned char)(raw[i] >> (8 * j));
#if PY_VERSION_HEX >= 0x030D0000
    return PyLong_FromUnsignedNativeBytes(buf, 32, Py_ASNATIVEBYTES_LITTLE_ENDIAN);
#else
    return _PyLong_FromByteArray(buf, 32, 1, 0);
#endif
}

/* A canonical field element (< p) into Montgomery form. Returns 0 ok, 1 not canonical
 * (no exception set), -1 error (exception set). */
static int int_to_fe(PyObject *obj, fe *r) {
    uint64_t raw[4];
    if (int_to_raw(obj, raw) < 0) {
        if (PyErr_ExceptionMatches(PyExc_ValueError)) {
            PyErr_Clear();
            return 1;
        }
        return -1;
    }
    if (raw_geq(raw, MOD)) return 1;
    fe_from_raw(r, raw);
    return 0;
}

static int int_to_fe_strict(PyObject *obj, fe *r) {
    int rc = int_to_fe(obj, r);
    if (rc == 1) PyErr_SetString(PyExc_ValueError, "not a field element in [0, P)");
    return rc == 0 ? 0 : -1;
}

static PyObject *fe_to_int(const fe *a) {
    uint64_t raw[4];
    fe_to_raw(raw, a);
    return raw_to_int(raw);
}

/* ---------------------------------------------------------------- Poseidon */

#define POSEIDON_MAX_T 17
#define FULL_ROUNDS 8

typedef struct {
    int t, rp;
    fe *initial;        /* t */
    fe *full_c;         /* FULL_ROUNDS * t */
    fe *partial_c;      /* rp - 1 */
    fe *last_c;         /* t */
    fe *sparse;         /* (rp - 1) * (2t - 1) */
    fe *last_m;         /* t * t */
    fe *mds;            /* t * t */
} poseidon_params;

static poseidon_params *POSEIDON[POSEIDON_MAX_T + 1];

static inline void pow5(fe *x) {
    fe x2, x4;
    fe_sqr(&x2, x);
    fe_sqr(&x4, &x2);
    fe_mul(x, x, &x4);
}

/* state <- m * state + c (dense t x t). */
static inline void dot(fe *r, const fe *row, const fe *v, int n) {
    if (n <= LAZY_MAX_TERMS) {
        uint64_t acc[8] = {0};
        for (int j = 0; j < n; j++) wide_mul_add(acc, &row[j], &v[j]);
        wide_reduce(r, acc);
        return;
    }
    fe acc = {{0, 0, 0, 0}}, prod;
    for (int j = 0; j < n; j++) {
        fe_mul(&prod, &row[j], &v[j]);
        fe_add(&acc, &acc, &prod);
    }
    *r = acc;
}

static void dense_layer(fe *state, int t, const fe *m, const fe *c) {
    fe out[POSEIDON_MAX_T];
    for (int i = 0; i < t; i++) {
        dot(&out[i], &m[i * t], state, t);
        fe_add(&out[i], &out[i], &c[i]);
    }
    memcpy(state, out, (size_t)t * sizeof(fe));
}

static void poseidon_permute(const poseidon_params *p, fe *state) {
    int t = p->t, half = FULL_ROUNDS / 2;
    for (int i = 0; i < t; i++) fe_add(&state[i], &state[i], &p->initial[i]);
    for (int r = 0; r < half; r++) {
        for (int i = 0; i < t; i++) pow5(&state[i]);
        dense_layer(state, t, p->mds, &p->full_c[r * t]);
    }
    for (int r = 0; r < p->rp - 1; r++) {
        const fe *s = &p->sparse[r * (2 * t - 1)];
        pow5(&state[0]);
        fe x0 = state[0], acc, prod;
        dot(&acc, s, state, t);
        fe_add(&acc, &acc, &p->partial_c[r]);
        for (int k = 1; k < t; k++) {
            fe_mul(&prod, &s[t + k - 1], &x0);
            fe_add(&state[k], &state[k], &prod);
        }
        state[0] = acc;
    }
    pow5(&state[0]);
    dense_layer(state, t, p->last_m, p->last_c);
    for (int r = half; r < FULL_ROUNDS; r++) {
        for (int i = 0; i < t; i++) pow5(&state[i]);
        dense_layer(state, t, p->mds, &p->full_c[r * t]);
    }
}

/* Hash n canonical inputs (Montgomery form); the caller checks that params are loaded. */
static void poseidon_hash(const fe *inputs, int n, fe *out) {
    fe state[POSEIDON_MAX_T];
    memset(&state[0], 0, sizeof(fe));
    memcpy(&state[1], inputs, (size_t)n * sizeof(fe));
    poseidon_permute(POSEIDON[n + 1], state);
    *out = state[0];
}

/* Fill `count` field elements from a flat Python sequence of ints. */
static int load_fes(PyObject *seq, fe *out, Py_ssize_t count, const char *what) {
    PyObject *fast = PySequence_Fast(seq, what);
    if (!fast) return -1;
    if (PySequence_Fast_GET_SIZE(fast) != count) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd values, got %zd", what, count,
                     PySequence_Fast_GET_SIZE(fast));
        Py_DECREF(fast);
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (int_to_fe_strict(PySequence_Fast_GET_ITEM(fast, i), &out[i]) < 0) {
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    return 0;
}

static PyObject *py_poseidon_load(PyObject *self, PyObject *args) {
    int t, rp;
    PyObject *initial, *full_c, *partial_c, *last_c, *sparse, *last_m, *mds;
    if (!PyArg_ParseTuple(args, "iiOOOOOOO", &t, &rp, &initial, &full_c, &partial_c, &last_c,
                          &sparse, &last_m, &mds))
        return NULL;
    if (t < 2 || t > POSEIDON_MAX_T || rp < 2 || rp > 200) {
        PyErr_SetString(PyExc_ValueError, "bad Poseidon width or round count");
        return NULL;
    }
    if (POSEIDON[t]) Py_RETURN_NONE;
    size_t n_fe = (size_t)t + FULL_ROUNDS * t + (rp - 1) + t + (size_t)(rp - 1) * (2 * t - 1) +
                  2 * (size_t)t * t;
    poseidon_params *p = PyMem_RawMalloc(sizeof *p);
    fe *buf = PyMem_RawMalloc(n_fe * sizeof(fe));
    if (!p || !buf) {
        PyMem_RawFree(p);
        PyMem_RawFree(buf);
        return PyErr_NoMemory();
    }
    p->t = t;
    p->rp = rp;
    p->initial = buf;
    p->full_c = p->initial + t;
    p->partial_c = p->full_c + FULL_ROUNDS * t;
    p->last_c = p->partial_c + (rp - 1);
    p->sparse = p->last_c + t;
    p->last_m = p->sparse + (size_t)(rp - 1) * (2 * t - 1);
    p->mds = p->last_m + (size_t)t * t;
    if (load_fes(initial, p->initial, t, "initial") < 0 ||
        load_fes(full_c, p->full_c, FULL_ROUNDS * t, "full_constants") < 0 ||
        load_fes(partial_c, p->partial_c, rp - 1, "partial_constants") < 0 ||
        load_fes(last_c, p->last_c, t, "last_partial_constants") < 0 ||
        load_fes(sparse, p->sparse, (Py_ssize_t)(rp - 1) * (2 * t - 1), "sparse") < 0 ||
        load_fes(last_m, p->last_m, (Py_ssize_t)t * t, "last_partial") < 0 ||
        load_fes(mds, p->mds, (Py_ssize_t)t * t, "mds") < 0) {
        PyMem_RawFree(buf);
        PyMem_RawFree(p);
        return NULL;
    }
    POSEIDON[t] = p;
    Py_RETURN_NONE;
}

static int check_loaded(int n) {
    if (n < 1 || n + 1 > POSEIDON_MAX_T) {
        PyErr_Format(PyExc_ValueError, "Poseidon takes 1 to %d inputs, got %d", POSEIDON_MAX_T - 1,
                     n);
        return -1;
    }
    if (!POSEIDON[n + 1]) {
        PyErr_Format(PyExc_LookupError, "Poseidon parameters for t=%d are not loaded", n + 1);
        return -1;
    }
    return 0;
}

static PyObject *py_poseidon(PyObject *self, PyObject *arg) {
    PyObject *fast = PySequence_Fast(arg, "poseidon() takes a sequence of ints");
    if (!fast) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    fe inputs[POSEIDON_MAX_T], out;
    if (check_loaded(n > POSEIDON_MAX_T ? POSEIDON_MAX_T : (int)n) < 0) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (int_to_fe_strict(PySequence_Fast_GET_ITEM(fast, i), &inputs[i]) < 0) goto fail;
    }
    Py_DECREF(fast);
    poseidon_hash(inputs, (int)n, &out);
    return fe_to_int(&out);
fail:
    Py_DECREF(fast);
    return NULL;
}

/* ------------------------------------------------------------- BabyJubJub */

typedef struct { fe X, Y, Z, T; } ge;      /* extended, on the a = -1 curve */
typedef struct { fe ymx, ypx, t2d; } ge_pre; /* affine: y - x', y + x', 2d' x' y */

static inline void ge_identity(ge *r) {
    memset(r, 0, sizeof *r);
    r->Y = FE_ONE;
    r->Z = FE_ONE;
}

/* Unified addition "add-2008-hwcd-3" (a = -1). */
static void ge_add(ge *r, const ge *p, const ge *q) {
    fe a, b, c, d, e, f, g, h, t1, t2;
    fe_sub(&t1, &p->Y, &p->X);
    fe_sub(&t2, &q->Y, &q->X);
    fe_mul(&a, &t1, &t2);
    fe_add(&t1, &p->Y, &p->X);
    fe_add(&t2, &q->Y, &q->X);
    fe_mul(&b, &t1, &t2);
    fe_mul(&c, &p->T, &q->T);
    fe_mul(&c, &c, &FE_2D);
    fe_mul(&d, &p->Z, &q->Z);
    fe_add(&d, &d, &d);
    fe_sub(&e, &b, &a);
    fe_sub(&f, &d, &c);
    fe_add(&g, &d, &c);
    fe_add(&h, &b, &a);
    fe_mul(&r->X, &e, &f);
    fe_mul(&r->Y, &g, &h);
    fe_mul(&r->T, &e, &h);
    fe_mul(&r->Z, &f, &g);
}

/* Mixed addition with a precomputed affine point (7M), optionally negated. */
static inline void ge_add_pre(ge *r, const ge *p, const ge_pre *q, int negate) {
    fe a, b, c, d, e, f, g, h, t1, t2;
    /* -(x, y) = (-x, y): swaps y - x and y + x and negates 2dxy. */
    const fe *qm = negate ? &q->ypx : &q->ymx, *qp = negate ? &q->ymx : &q->ypx;
    fe_sub(&t1, &p->Y, &p->X);
    fe_mul(&a, &t1, qm);
    fe_add(&t2, &p->Y, &p->X);
    fe_mul(&b, &t2, qp);
    fe_mul(&c, &p->T, &q->t2d);
    if (negate) fe_neg(&c, &c);
    fe_add(&d, &p->Z, &p->Z);
    fe_sub(&e, &b, &a);
    fe_sub(&f, &d, &c);
    fe_add(&g, &d, &c);
    fe_add(&h, &b, &a);
    fe_mul(&r->X, &e, &f);
    fe_mul(&r->Y, &g, &h);
    fe_mul(&r->T, &e, &h);
    fe_mul(&r->Z, &f, &g);
}

/* Doubling "dbl-2008-hwcd" with a = -1. */
static void ge_dbl(ge *r, const ge *p) {
    fe a, b, c, d, e, f, g, h, t;
    fe_sqr(&a, &p->X);
    fe_sqr(&b, &p->Y);
    fe_sqr(&c, &p->Z);
    fe_add(&c, &c, &c);
    fe_neg(&d, &a);
    fe_add(&t, &p->X, &p->Y);
    fe_sqr(&e, &t);
    fe_sub(&e, &e, &a);
    fe_sub(&e, &e, &b);
    fe_add(&g, &d, &b);
    fe_sub(&f, &g, &c);
    fe_sub(&h, &d, &b);
    fe_mul(&r->X, &e, &f);
    fe_mul(&r->Y, &g, &h);
    fe_mul(&r->T, &e, &h);
    fe_mul(&r->Z, &f, &g);
}

/* From BabyJubJub affine (x, y) to the a = -1 curve's extended coordinates. */
static void ge_from_affine(ge *r, const fe *x, const fe *y) {
    fe_mul(&r->X, x, &FE_ALPHA);
    r->Y = *y;
    r->Z = FE_ONE;
    fe_mul(&r->T, &r->X, y);
}

/* On BabyJubJub (original a, d), for inputs before mapping. */
static int affine_on_curve(const fe *x, const fe *y) {
    fe x2, y2, lhs, rhs, t;
    fe_sqr(&x2, x);
    fe_sqr(&y2, y);
    fe_mul(&lhs, &x2, &FE_A);
    fe_add(&lhs, &lhs, &y2);
    fe_mul(&t, &x2, &y2);
    fe_mul(&t, &t, &FE_D);
    fe_add(&rhs, &FE_ONE, &t);
    return fe_eq(&lhs, &rhs);
}

/* Normalise n points to ge_pre with one inversion (Montgomery's trick). */
static int ge_batch_to_pre(ge_pre *out, const ge *pts, size_t n) {
    fe *prefix = PyMem_RawMalloc(n * sizeof(fe));
    if (!prefix) return -1;
    fe acc = FE_ONE, inv, zi;
    for (size_t i = 0; i < n; i++) {
        prefix[i] = acc;
        fe_mul(&acc, &acc, &pts[i].Z);
    }
    fe_inv(&inv, &acc);
    for (size_t i = n; i-- > 0;) {
        fe_mul(&zi, &inv, &prefix[i]);
        fe_mul(&inv, &inv, &pts[i].Z);
        fe x, y;
        fe_mul(&x, &pts[i].X, &zi);
        fe_mul(&y, &pts[i].Y, &zi);
        fe_sub(&out[i].ymx, &y, &x);
        fe_add(&out[i].ypx, &y, &x);
        fe_mul(&out[i].t2d, &x, &y);
        fe_mul(&out[i].t2d, &out[i].t2d, &FE_2D);
    }
    PyMem_RawFree(prefix);
    return 0;
}

/* Window tables: table[i][j] = (j + 1) * 2^(w*i) * P for j < 2^(w-1); scalars are
 * recoded into signed digits in [-2^(w-1), 2^(w-1)) so that a negation halves the table. */
static int build_table(ge_pre *table, const ge *point, int w, int windows) {
    int per = 1 << (w - 1);
    size_t n = (size_t)windows * per;
    ge *pts = PyMem_RawMalloc(n * sizeof(ge));
    if (!pts) return -1;
    ge base = *point;
    for (int i = 0; i < windows; i++) {
        ge *row = &pts[(size_t)i * per];
        row[0] = base;
        for (int j = 1; j < per; j++) ge_add(&row[j], &row[j - 1], &base);
        ge_add(&base, &row[per - 1], &row[per - 1]); /* 2^w * base */
    }
    int rc = ge_batch_to_pre(table, pts, n);
    PyMem_RawFree(pts);
    return rc;
}

/* Signed digits of a scalar below 2^(w*windows - 1). */
static void recode(int8_t *digits, const uint64_t k[4], int w, int windows) {
    int carry = 0, half = 1 << (w - 1);
    for (int i = 0; i < windows; i++) {
        int bit = i * w, v = 0;
        for (int b = w - 1; b >= 0; b--) {
            int pos = bit + b;
            v = (v << 1) | (pos < 256 ? (int)((k[pos / 64] >> (pos % 64)) & 1) : 0);
        }
        v += carry;
        carry = v >= half;
        digits[i] = (int8_t)(carry ? v - (1 << w) : v);
    }
}

/* r += k * P using P's table; `negate` adds -k * P instead. */
static void table_mul_add(ge *r, const ge_pre *table, const uint64_t k[4], int w, int windows,
                          int negate) {
    int8_t digits[64];
    int per = 1 << (w - 1);
    recode(digits, k, w, windows);
    for (int i = 0; i < windows; i++) {
        int d = digits[i];
        if (d == 0) continue;
        int neg = (d < 0) ^ negate;
        ge_add_pre(r, r, &table[i * per + (d < 0 ? -d : d) - 1], neg);
    }
}

#define BASE_W 8
#define BASE_WINDOWS 32   /* scalars < 2^255 */
#define KEY_W 4
#define KEY_WINDOWS 64    /* scalars < 2^255 */

static ge_pre *BASE8_TABLE;

/* Back to BabyJubJub affine coordinates. */
static void ge_to_affine(fe *x, fe *y, const ge *p) {
    fe zi;
    fe_inv(&zi, &p->Z);
    fe_mul(x, &p->X, &zi);
    fe_mul(x, x, &FE_ALPHA_INV);
    fe_mul(y, &p->Y, &zi);
}

static int scalar_below(const uint64_t k[4], int bits) {
    for (int i = bits; i < 256; i++)
        if ((k[i / 64] >> (i % 64)) & 1) return 0;
    return 1;
}

static PyObject *py_base8_mul(PyObject *self, PyObject *arg) {
    uint64_t k[4];
    if (int_to_raw(arg, k) < 0) return NULL;
    if (!scalar_below(k, 254)) {
        PyErr_SetString(PyExc_ValueError, "scalar must be below 2^254");
        return NULL;
    }
    ge acc;
    fe x, y;
    ge_identity(&acc);
    table_mul_add(&acc, BASE8_TABLE, k, BASE_W, BASE_WINDOWS, 0);
    ge_to_affine(&x, &y, &acc);
    PyObject *px = fe_to_int(&x), *py = fe_to_int(&y);
    if (!px || !py) {
        Py_XDECREF(px);
        Py_XDECREF(py);
        return NULL;
    }
    return Py_BuildValue("(NN)", px, py);
}

/* KeyTable: a public key A with the window table of 8A, for fast repeated verification. */
typedef struct {
    PyObject_HEAD
    fe ax, ay;
    ge_pre table[KEY_WINDOWS << (KEY_W - 1)];
} KeyTableObject;

static PyObject *KeyTable_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"ax", "ay", NULL};
    PyObject *oax, *oay;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO", kwlist, &oax, &oay)) return NULL;
    fe ax, ay;
    int rx = int_to_fe(oax, &ax), ry = int_to_fe(oay, &ay);
    if (rx < 0 || ry < 0) return NULL;
    if (rx || ry) {
        PyErr_SetString(PyExc_ValueError, "public key coordinates must be field elements");
        return NULL;
    }
    if (!affine_on_curve(&ax, &ay)) {
        PyErr_SetString(PyExc_ValueError, "public key is not on BabyJubJub");
        return NULL;
    }
    ge a8;
    ge_from_affine(&a8, &ax, &ay);
    ge_dbl(&a8, &a8);
    ge_dbl(&a8, &a8);
    ge_dbl(&a8, &a8);
    /* As circomlib's EdDSAPoseidonVerifier: 8A must not be the identity (x == 0). */
    if (fe_is_zero(&a8.X)) {
        PyErr_SetString(PyExc_ValueError, "public key has small order");
        return NULL;
    }
    KeyTableObject *self = (KeyTableObject *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->ax = ax;
    self->ay = ay;
    if (build_table(self->table, &a8, KEY_W, KEY_WINDOWS) < 0) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static PyObject *KeyTable_get_ax(KeyTableObject *self, void *closure) { return fe_to_int(&self->ax); }
static PyObject *KeyTable_get_ay(KeyTableObject *self, void *closure) { return fe_to_int(&self->ay); }

static PyGetSetDef KeyTable_getset[] = {
    {"ax", (getter)KeyTable_get_ax, NULL, "public key x", NULL},
    {"ay", (getter)KeyTable_get_ay, NULL, "public key y", NULL},
    {NULL},
};

static PyTypeObject KeyTableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "zg_shared.crypto._fast.KeyTable",
    .tp_doc = "A validated BabyJubJub public key with a precomputed table for verification.",
    .tp_basicsize = sizeof(KeyTableObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = KeyTable_new,
    .tp_getset = KeyTable_getset,
};

/* verify(msg, r8x, r8y, s, key) -> bool, exactly circomlibjs verifyPoseidon's equation:
 * S * Base8 == R8 + (8 * H(R8, A, msg)) * A. */
static PyObject *py_verify(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "verify(msg, r8x, r8y, s, key) takes 5 arguments");
        return NULL;
    }
    if (!PyObject_TypeCheck(args[4], &KeyTableType)) {
        PyErr_SetString(PyExc_TypeError, "key must be a KeyTable");
        return NULL;
    }
    if (check_loaded(5) < 0) return NULL;
    KeyTableObject *key = (KeyTableObject *)args[4];
    fe h[5], hm;
    int rc;
    if ((rc = int_to_fe(args[0], &h[4])) != 0) {
        if (rc > 0) PyErr_SetString(PyExc_ValueError, "msg must be a field element in [0, P)");
        return NULL;
    }
    if ((rc = int_to_fe(args[1], &h[0])) != 0) goto reject_or_fail;
    if ((rc = int_to_fe(args[2], &h[1])) != 0) goto reject_or_fail;
    uint64_t s[4];
    if (int_to_raw(args[3], s) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError)) return NULL;
        PyErr_Clear();
        Py_RETURN_FALSE;
    }
    if (raw_geq(s, SUBORDER)) Py_RETURN_FALSE;
    if (!affine_on_curve(&h[0], &h[1])) Py_RETURN_FALSE;
    h[2] = key->ax;
    h[3] = key->ay;
    int ok;
    /* No Python objects are touched below: let other threads run meanwhile. */
    Py_BEGIN_ALLOW_THREADS
    poseidon_hash(h, 5, &hm);
    /* hm * 8A only depends on hm mod l, because 8A lies in the order-l subgroup. */
    uint64_t k[4];
    fe_to_raw(k, &hm);
    while (raw_geq(k, SUBORDER)) raw_sub(k, SUBORDER);
    ge acc;
    ge_from_affine(&acc, &h[0], &h[1]);
    table_mul_add(&acc, key->table, k, KEY_W, KEY_WINDOWS, 0);
    table_mul_add(&acc, BASE8_TABLE, s, BASE_W, BASE_WINDOWS, 1);
    /* R8 + hm*8A - S*Base8 must be the identity (0 : Z : Z). */
    ok = fe_is_zero(&acc.X) && fe_eq(&acc.Y, &acc.Z);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(ok);
reject_or_fail:
    if (rc < 0) return NULL;
    Py_RETURN_FALSE;
}

/* --------------------------------------------------------------- BLAKE-512 */

static const uint64_t BLAKE_IV[8] = {
    0x6A09E667F3BCC908ULL, 0xBB67AE8584CAA73BULL, 0x3C6EF372FE94F82BULL, 0xA54FF53A5F1D36F1ULL,
    0x510E527FADE682D1ULL, 0x9B05688C2B3E6C1FULL, 0x1F83D9ABFB41BD6BULL, 0x5BE0CD19137E2179ULL};
static const uint64_t BLAKE_U[16] = {
    0x243F6A8885A308D3ULL, 0x13198A2E03707344ULL, 0xA4093822299F31D0ULL, 0x082EFA98EC4E6C89ULL,
    0x452821E638D01377ULL, 0xBE5466CF34E90C6CULL, 0xC0AC29B7C97C50DDULL, 0x3F84D5B5B5470917ULL,
    0x9216D5D98979FB1BULL, 0xD1310BA698DFB5ACULL, 0x2FFD72DBD01ADFB7ULL, 0xB8E1AFED6A267E96ULL,
    0xBA7C9045F12C7F99ULL, 0x24A19947B3916CF7ULL, 0x0801F2E2858EFC16ULL, 0x636920D871574E69ULL};
static const uint8_t BLAKE_SIGMA[10][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0}};

static inline uint64_t rotr64(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

static void blake512_compress(uint64_t h[8], const uint8_t block[128], uint64_t counter) {
    static const uint8_t steps[8][4] = {{0, 4, 8, 12}, {1, 5, 9, 13}, {2, 6, 10, 14},
                                        {3, 7, 11, 15}, {0, 5, 10, 15}, {1, 6, 11, 12},
                                        {2, 7, 8, 13}, {3, 4, 9, 14}};
    uint64_t m[16], v[16];
    for (int i = 0; i < 16; i++) {
        uint64_t w = 0;
        for (int j = 0; j < 8; j++) w = (w << 8) | block[i * 8 + j];
        m[i] = w;
    }
    for (int i = 0; i < 8; i++) v[i] = h[i];
    for (int i = 0; i < 4; i++) v[8 + i] = BLAKE_U[i];
    /* Messages here are far below 2^64 bits, so the counter's high word is zero. */
    v[12] = counter ^ BLAKE_U[4];
    v[13] = counter ^ BLAKE_U[5];
    v[14] = BLAKE_U[6];
    v[15] = BLAKE_U[7];
    for (int r = 0; r < 16; r++) {
        const uint8_t *s = BLAKE_SIGMA[r % 10];
        for (int i = 0; i < 8; i++) {
            int a = steps[i][0], b = steps[i][1], c = steps[i][2], d = steps[i][3];
            int x = s[2 * i], y = s[2 * i + 1];
            v[a] += v[b] + (m[x] ^ BLAKE_U[y]);
            v[d] = rotr64(v[d] ^ v[a], 32);
            v[c] += v[d];
            v[b] = rotr64(v[b] ^ v[c], 25);
            v[a] += v[b] + (m[y] ^ BLAKE_U[x]);
            v[d] = rotr64(v[d] ^ v[a], 16);
            v[c] += v[d];
            v[b] = rotr64(v[b] ^ v[c], 11);
        }
    }
    for (int i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
}

static PyObject *py_blake512(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    const uint8_t *data = view.buf;
    size_t len = (size_t)view.len;
    if (len > ((size_t)1 << 56)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "input too long");
        return NULL;
    }
    uint64_t h[8], bits = (uint64_t)len * 8;
    memcpy(h, BLAKE_IV, sizeof h);
    size_t off = 0;
    for (; len - off >= 128; off += 128) {
        blake512_compress(h, data + off, (uint64_t)(off + 128) * 8);
    }
    /* Tail and padding: 0x80 .. 0x01 ending at byte 111 (0x81 when it is one byte),
     * then the 128-bit length; a block without message bits uses counter 0. */
    uint8_t tail[256];
    size_t rem = len - off, total = rem <= 111 ? 128 : 256;
    memset(tail, 0, sizeof tail);
    memcpy(tail, data + off, rem);
    PyBuffer_Release(&view);
    tail[rem] |= 0x80;
    tail[total - 17] |= 0x01;
    for (int j = 0; j < 8; j++) tail[total - 1 - j] = (uint8_t)(bits >> (8 * j));
    blake512_compress(h, tail, rem ? bits : 0);
    if (total == 256) blake512_compress(h, tail + 128, 0);
    uint8_t out[64];
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++) out[i * 8 + j] = (uint8_t)(h[i] >> (56 - 8 * j));
    return PyBytes_FromStringAndSize((const char *)out, 64);
}

/* use_asm(flag=None) -> bool: query or switch the BMI2/ADX multiplication (for tests). */
static PyObject *py_use_asm(PyObject *self, PyObject *args) {
    PyObject *flag = Py_None;
    if (!PyArg_ParseTuple(args, "|O", &flag)) return NULL;
    if (flag != Py_None) {
        int want = PyObject_IsTrue(flag);
        if (want < 0) return NULL;
#ifdef HAVE_ADX_ASM
        __builtin_cpu_init();
        if (want && !(__builtin_cpu_supports("bmi2") && __builtin_cpu_supports("adx"))) {
            PyErr_SetString(PyExc_RuntimeError, "this CPU lacks BMI2/ADX");
            return NULL;
        }
        USE_ADX = want;
#else
        if (want) {
            PyErr_SetString(PyExc_RuntimeError, "built without the BMI2/ADX code");
            return NULL;
        }
#endif
    }
    return PyBool_FromLong(USE_ADX);
}

/* ----------------------------------------------------------------- module */

static PyMethodDef methods[] = {
    {"poseidon_load", py_poseidon_load, METH_VARARGS,
     "poseidon_load(t, rp, initial, full_c, partial_c, last_c, sparse, last_m, mds)"},
    {"poseidon", py_poseidon, METH_O, "poseidon(inputs) -> int (parameters must be loaded)"},
    {"base8_mul", py_base8_mul, METH_O, "base8_mul(k) -> (x, y) = k * Base8, k < 2^254"},
    {"verify", (PyCFunction)(void (*)(void))py_verify, METH_FASTCALL,
     "verify(msg, r8x, r8y, s, key: KeyTable) -> bool"},
    {"blake512", py_blake512, METH_O, "blake512(data) -> 64-byte BLAKE-512 digest"},
    {"use_asm", py_use_asm, METH_VARARGS, "use_asm(flag=None) -> bool: BMI2/ADX multiplication"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_fast", "Fast Poseidon / BabyJubJub EdDSA (see _fast.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fast(void) {
#ifdef HAVE_ADX_ASM
    __builtin_cpu_init();
    USE_ADX = __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("adx");
#endif
    fe_init_constants();
    if (curve_init_constants() < 0) {
        PyErr_SetString(PyExc_ImportError, "_fast: ALPHA is not a square root of -a");
        return NULL;
    }
    if (!BASE8_TABLE) {
        static const uint64_t bx[4] = {0x2893f3f6bb957051ULL, 0x2ab8d8010534e0b6ULL,
                                       0x4eacb2e09d6277c1ULL, 0x0bb77a6ad63e739bULL};
        static const uint64_t by[4] = {0x4b3c257a872d7d8bULL, 0xfce0051fb9e13377ULL,
                                       0x25572e1cd16bf9edULL, 0x25797203f7a0b249ULL};
        fe x, y;
        ge b8;
        fe_from_raw(&x, bx);
        fe_from_raw(&y, by);
        if (!affine_on_curve(&x, &y)) {
            PyErr_SetString(PyExc_ImportError, "_fast: Base8 constant is wrong");
            return NULL;
        }
        ge_from_affine(&b8, &x, &y);
        BASE8_TABLE = PyMem_RawMalloc(sizeof(ge_pre) * ((size_t)BASE_WINDOWS << (BASE_W - 1)));
        if (!BASE8_TABLE) return PyErr_NoMemory();
        if (build_table(BASE8_TABLE, &b8, BASE_W, BASE_WINDOWS) < 0) return PyErr_NoMemory();
    }
    if (PyType_Ready(&KeyTableType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    Py_INCREF(&KeyTableType);
    if (PyModule_AddObject(m, "KeyTable", (PyObject *)&KeyTableType) < 0) {
        Py_DECREF(&KeyTableType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
