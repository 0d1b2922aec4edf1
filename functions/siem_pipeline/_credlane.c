/*
 * The redactor's text lane, compiled: siem_pipeline._credlane.Lane.
 *
 * The same reasoning as Redactor._lane over CredentialScanner in Python (siem_pipeline/redact.py and
 * siem_pipeline/credscan.py, whose docstrings give the argument), done in one C pass instead of a Hyperscan
 * scan whose every hit calls back into Python, and with value ends read by a JSON lexer instead of a
 * decoder call per member:
 *
 *   1. every occurrence of a word (ASCII letters compared case-insensitively, as Hyperscan's CASELESS does),
 *      sorted by (end, word index), as CredentialScanner.scan reports them;
 *   2. a credential key written "key": (opening quote not after a backslash) starts a member; its value (a
 *      string, an array, or null, right after the colon) is read to its end by the lexer below;
 *   3. every other word must lie inside such a member's value, or be a marker followed by a byte no token
 *      can follow; the member of "credentials" must be the only one and hold the text the head decoded;
 *   4. the values are replaced: a non-empty string by the mask, a non-empty array by as many masks.
 *
 * Lane.redact(text, credentials) returns the edited text (new bytes), `text` itself when nothing is to be
 * masked, or None when the event needs the full walk. Tests run it against the Python lane and the walk.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MAX_WORDS 64

#define MAX_DEPTH 64

typedef struct {
    PyObject_HEAD
    int nwords;
    int key_count;                       /* the member keys come first; "credentials" is the last of them */
    unsigned char *words[MAX_WORDS];     /* lowercased */
    Py_ssize_t lengths[MAX_WORDS];
    unsigned char harmless[MAX_WORDS][256];
    char has_harmless[MAX_WORDS];
    uint64_t first[256];                 /* byte -> bit of its first-byte class (any case) */
    uint64_t second[256];                /* byte -> classes it can follow as a word's second byte */
    uint64_t third[256];                 /* byte -> classes it can follow as a word's third byte (any byte for a
                                          * class holding a word of two bytes) */
    signed char class_words[MAX_WORDS][MAX_WORDS + 1];  /* class -> its words, -1 terminated */
    /* The byte tables as nibble tables over 8 buckets (class c in bucket c % 8): a byte b may be a first byte of
     * a class of bucket k when bit k is set in both nibbles[0][b & 15] and nibbles[1][b >> 4]; a second byte
     * likewise with nibbles[2] and [3], a third with [4] and [5]. A filter only: match_at checks the classes
     * exactly, so classes sharing a bucket (or nibbles combining) cost only extra candidates. */
    unsigned char nibbles[6][16];
    int simd;                            /* 2: AVX2, 1: SSSE3, 0: a byte at a time */
    PyObject *mask;                      /* the JSON text of the mask string, e.g. "[REDACTED]" with quotes */
} Lane;

static unsigned char lower_table[256];

typedef struct { Py_ssize_t end; int index; } Hit;
typedef struct { Py_ssize_t start, stop, count; } Edit;  /* count 0: a string; n: an array of n */

/* ---- the JSON lexer: where a value ends (-1: not valid JSON there) ------------------------------------ */

static inline Py_ssize_t skip_ws(const unsigned char *t, Py_ssize_t n, Py_ssize_t i) {
    while (i < n && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) i++;
    return i;
}

static inline int is_hex(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <emmintrin.h>
#endif

/* The first position from i on holding a quote, a backslash or a control character (n if none): 16 bytes at a
 * time with SSE2 (every x86-64 has it). */
static inline Py_ssize_t string_stop(const unsigned char *t, Py_ssize_t n, Py_ssize_t i) {
#if defined(__x86_64__) && defined(__GNUC__)
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), control = _mm_set1_epi8(0x1f);
    for (; i + 16 <= n; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(t + i));
        __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
                                    _mm_cmpeq_epi8(_mm_max_epu8(x, control), control));
        int mask = _mm_movemask_epi8(stop);
        if (mask) return i + __builtin_ctz((unsigned)mask);
    }
#endif
    while (i < n && t[i] != '"' && t[i] != '\\' && t[i] >= 0x20) i++;
    return i;
}

/* t[i] is the opening quote. */
static Py_ssize_t skip_string(const unsigned char *t, Py_ssize_t n, Py_ssize_t i) {
    i++;
    for (;;) {
        i = string_stop(t, n, i);
        if (i >= n || t[i] < 0x20) return -1;
        if (t[i] == '"') return i + 1;
        if (i + 1 >= n) return -1;
        switch (t[i + 1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            i += 2;
            break;
        case 'u':
            if (i + 5 >= n || !is_hex(t[i + 2]) || !is_hex(t[i + 3]) || !is_hex(t[i + 4]) || !is_hex(t[i + 5]))
                return -1;
            i += 6;
            break;
        default:
            return -1;
        }
    }
}

static Py_ssize_t skip_number(const unsigned char *t, Py_ssize_t n, Py_ssize_t i) {
    if (i < n && t[i] == '-') i++;
    if (i >= n) return -1;
    if (t[i] == '0') i++;
    else if (t[i] >= '1' && t[i] <= '9') { while (i < n && t[i] >= '0' && t[i] <= '9') i++; }
    else return -1;
    if (i < n && t[i] == '.') {
        i++;
        if (i >= n || t[i] < '0' || t[i] > '9') return -1;
        while (i < n && t[i] >= '0' && t[i] <= '9') i++;
    }
    if (i < n && (t[i] == 'e' || t[i] == 'E')) {
        i++;
        if (i < n && (t[i] == '+' || t[i] == '-')) i++;
        if (i >= n || t[i] < '0' || t[i] > '9') return -1;
        while (i < n && t[i] >= '0' && t[i] <= '9') i++;
    }
    return i;
}

static Py_ssize_t skip_value(const unsigned char *t, Py_ssize_t n, Py_ssize_t i, int depth, Py_ssize_t *count);

/* t[i] is '[' or '{'; *count gets the number of elements or members. */
static Py_ssize_t skip_container(const unsigned char *t, Py_ssize_t n, Py_ssize_t i, int depth, Py_ssize_t *count) {
    unsigned char close = t[i] == '[' ? ']' : '}';
    Py_ssize_t elements = 0;
    if (depth >= MAX_DEPTH) return -1;
    i = skip_ws(t, n, i + 1);
    if (i < n && t[i] == close) { *count = 0; return i + 1; }
    for (;;) {
        if (close == '}') {
            if (i >= n || t[i] != '"') return -1;
            i = skip_string(t, n, i);
            if (i < 0) return -1;
            i = skip_ws(t, n, i);
            if (i >= n || t[i] != ':') return -1;
            i = skip_ws(t, n, i + 1);
        }
        i = skip_value(t, n, i, depth + 1, NULL);
        if (i < 0) return -1;
        elements++;
        i = skip_ws(t, n, i);
        if (i >= n) return -1;
        if (t[i] == close) { *count = elements; return i + 1; }
        if (t[i] != ',') return -1;
        i = skip_ws(t, n, i + 1);
    }
}

static Py_ssize_t skip_value(const unsigned char *t, Py_ssize_t n, Py_ssize_t i, int depth, Py_ssize_t *count) {
    Py_ssize_t ignored;
    if (i >= n) return -1;
    switch (t[i]) {
    case '"': return skip_string(t, n, i);
    case '[': case '{': return skip_container(t, n, i, depth, count ? count : &ignored);
    case 't': return (n - i >= 4 && memcmp(t + i, "true", 4) == 0) ? i + 4 : -1;
    case 'f': return (n - i >= 5 && memcmp(t + i, "false", 5) == 0) ? i + 5 : -1;
    case 'n': return (n - i >= 4 && memcmp(t + i, "null", 4) == 0) ? i + 4 : -1;
    default: return skip_number(t, n, i);
    }
}

/* ---- the scan ----------------------------------------------------------------------------------------- */

static int hit_order(const void *a, const void *b) {
    const Hit *x = a, *y = b;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->index - y->index;
}

/* The words starting at t[i] (its first two bytes are a candidate pair): appended to *hits. */
static int match_at(Lane *self, const unsigned char *t, Py_ssize_t n, Py_ssize_t i, Hit **hits, Py_ssize_t *used,
                    Py_ssize_t *size, int *sorted) {
    uint64_t classes = self->first[t[i]] & self->second[t[i + 1]];
    while (classes) {
        int cls = __builtin_ctzll(classes);
        const signed char *w;
        classes &= classes - 1;
        for (w = self->class_words[cls]; *w >= 0; w++) {
            Py_ssize_t length = self->lengths[*w], k;
            const unsigned char *word = self->words[*w];
            if (n - i < length) continue;
            for (k = 1; k < length && lower_table[t[i + k]] == word[k]; k++) {}
            if (k < length) continue;
            if (*used == *size) {
                Hit *grown = PyMem_Realloc(*hits, 2 * *size * sizeof(Hit));
                if (!grown) { PyErr_NoMemory(); return -1; }
                *hits = grown;
                *size *= 2;
            }
            (*hits)[*used].end = i + length;
            (*hits)[*used].index = *w;
            if (*used && hit_order(&(*hits)[*used - 1], &(*hits)[*used]) > 0) *sorted = 0;
            (*used)++;
        }
    }
    return 0;
}

/* Every word's occurrences, sorted by (end, index); NULL with an exception set on a memory error.
 *
 * A position is a candidate when its first byte is one of a class's (the words starting with the same byte) and
 * its second byte one of that class's second bytes; candidates (about 65 in a 5 KB audit event) are compared
 * whole by match_at. On x86-64 the candidates of 16 or 32 positions at a time come from nibble tables
 * (PSHUFB, SSSE3 or AVX2 as the CPU has them: the technique of Hyperscan's "Teddy"); elsewhere a position at
 * a time from the byte tables. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define NIBBLES(x, lo, hi, nib, and, shuffle, shift) and(shuffle(lo, and(x, nib)), shuffle(hi, and(shift(x, 4), nib)))

__attribute__((target("ssse3"))) static Py_ssize_t blocks16(Lane *self, const unsigned char *t, Py_ssize_t n,
                                                           Hit **hits, Py_ssize_t *used, Py_ssize_t *size,
                                                           int *sorted) {
    const __m128i lo1 = _mm_loadu_si128((const __m128i *)self->nibbles[0]);
    const __m128i hi1 = _mm_loadu_si128((const __m128i *)self->nibbles[1]);
    const __m128i lo2 = _mm_loadu_si128((const __m128i *)self->nibbles[2]);
    const __m128i hi2 = _mm_loadu_si128((const __m128i *)self->nibbles[3]);
    const __m128i lo3 = _mm_loadu_si128((const __m128i *)self->nibbles[4]);
    const __m128i hi3 = _mm_loadu_si128((const __m128i *)self->nibbles[5]);
    const __m128i nib = _mm_set1_epi8(0x0f), zero = _mm_setzero_si128();
    Py_ssize_t i = 0;
    for (; i + 18 <= n; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(t + i)), b = _mm_loadu_si128((const __m128i *)(t + i + 1));
        __m128i c = _mm_loadu_si128((const __m128i *)(t + i + 2));
        __m128i m = _mm_and_si128(_mm_and_si128(NIBBLES(a, lo1, hi1, nib, _mm_and_si128, _mm_shuffle_epi8, _mm_srli_epi16),
                                                NIBBLES(b, lo2, hi2, nib, _mm_and_si128, _mm_shuffle_epi8, _mm_srli_epi16)),
                                  NIBBLES(c, lo3, hi3, nib, _mm_and_si128, _mm_shuffle_epi8, _mm_srli_epi16));
        unsigned mask = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(m, zero)) ^ 0xffffu;
        while (mask) {
            if (match_at(self, t, n, i + __builtin_ctz(mask), hits, used, size, sorted) < 0) return -1;
            mask &= mask - 1;
        }
    }
    return i;
}

__attribute__((target("avx2"))) static Py_ssize_t blocks32(Lane *self, const unsigned char *t, Py_ssize_t n,
                                                          Hit **hits, Py_ssize_t *used, Py_ssize_t *size,
                                                          int *sorted) {
    const __m256i lo1 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)self->nibbles[0]));
    const __m256i hi1 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)self->nibbles[1]));
    const __m256i lo2 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)self->nibbles[2]));
    const __m256i hi2 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)self->nibbles[3]));
    const __m256i lo3 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)self->nibbles[4]));
    const __m256i hi3 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)self->nibbles[5]));
    const __m256i nib = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
    Py_ssize_t i = 0;
    for (; i + 34 <= n; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(t + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(t + i + 1));
        __m256i c = _mm256_loadu_si256((const __m256i *)(t + i + 2));
        __m256i m = _mm256_and_si256(
            _mm256_and_si256(NIBBLES(a, lo1, hi1, nib, _mm256_and_si256, _mm256_shuffle_epi8, _mm256_srli_epi16),
                             NIBBLES(b, lo2, hi2, nib, _mm256_and_si256, _mm256_shuffle_epi8, _mm256_srli_epi16)),
            NIBBLES(c, lo3, hi3, nib, _mm256_and_si256, _mm256_shuffle_epi8, _mm256_srli_epi16));
        unsigned mask = ~(unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(m, zero));
        while (mask) {
            if (match_at(self, t, n, i + __builtin_ctz(mask), hits, used, size, sorted) < 0) return -1;
            mask &= mask - 1;
        }
    }
    return i;
}
#endif

static Hit *scan(Lane *self, const unsigned char *t, Py_ssize_t n, Py_ssize_t *count) {
    Py_ssize_t size = 16, used = 0, i = 0;
    int sorted = 1;
    Hit *hits = PyMem_Malloc(size * sizeof(Hit));
    if (!hits) { PyErr_NoMemory(); return NULL; }
#if defined(__x86_64__) && defined(__GNUC__)
    if (self->simd == 2) i = blocks32(self, t, n, &hits, &used, &size, &sorted);
    else if (self->simd == 1) i = blocks16(self, t, n, &hits, &used, &size, &sorted);
#endif
    if (i < 0) goto fail;
    for (; i + 1 < n; i++)
        if ((self->first[t[i]] & self->second[t[i + 1]]) && match_at(self, t, n, i, &hits, &used, &size, &sorted) < 0)
            goto fail;
    if (!sorted) qsort(hits, used, sizeof(Hit), hit_order);
    *count = used;
    return hits;
fail:
    PyMem_Free(hits);
    return NULL;
}

/* ---- Lane --------------------------------------------------------------------------------------------- */

/* A 64-bit class mask as the mask of its buckets: class c in bucket c % 8. */
static unsigned char fold_buckets(uint64_t classes) {
    unsigned char buckets = 0;
    for (; classes; classes >>= 8) buckets |= (unsigned char)(classes & 0xff);
    return buckets;
}

static void Lane_dealloc(Lane *self) {
    int i;
    for (i = 0; i < self->nwords; i++) PyMem_Free(self->words[i]);
    Py_XDECREF(self->mask);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Lane_init(Lane *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"words", "key_count", "harmless_after", "mask", "simd", NULL};
    PyObject *words, *harmless, *mask;
    int key_count, i, classes = 0, simd = 1;
    unsigned char class_of[256];
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!iO!O!|p", kwlist, &PyTuple_Type, &words, &key_count,
                                     &PyTuple_Type, &harmless, &PyBytes_Type, &mask, &simd))
        return -1;
    if (self->nwords) { PyErr_SetString(PyExc_RuntimeError, "Lane is initialised once"); return -1; }
    if (PyTuple_GET_SIZE(words) > MAX_WORDS || PyTuple_GET_SIZE(words) != PyTuple_GET_SIZE(harmless)) {
        PyErr_Format(PyExc_ValueError, "at most %d words, each with its harmless table or None", MAX_WORDS);
        return -1;
    }
    if (key_count < 1 || key_count > PyTuple_GET_SIZE(words)) {
        PyErr_SetString(PyExc_ValueError, "key_count out of range");
        return -1;
    }
    memset(class_of, 0xff, sizeof class_of);
    memset(self->first, 0, sizeof self->first);
    memset(self->second, 0, sizeof self->second);
    memset(self->third, 0, sizeof self->third);
    for (i = 0; i < PyTuple_GET_SIZE(words); i++) {
        PyObject *word = PyTuple_GET_ITEM(words, i), *table = PyTuple_GET_ITEM(harmless, i);
        Py_ssize_t length, k;
        unsigned char *copy, c0;
        int cls, c;
        if (!PyBytes_Check(word) || PyBytes_GET_SIZE(word) < 2) {
            PyErr_SetString(PyExc_ValueError, "words are bytes of two bytes or more");
            return -1;
        }
        if (table != Py_None && (!PyBytes_Check(table) || PyBytes_GET_SIZE(table) != 256)) {
            PyErr_SetString(PyExc_ValueError, "a harmless table is 256 bytes");
            return -1;
        }
        length = PyBytes_GET_SIZE(word);
        copy = PyMem_Malloc(length);
        if (!copy) { PyErr_NoMemory(); return -1; }
        for (k = 0; k < length; k++) copy[k] = lower_table[(unsigned char)PyBytes_AS_STRING(word)[k]];
        self->words[i] = copy;
        self->lengths[i] = length;
        self->nwords = i + 1;
        self->has_harmless[i] = table != Py_None;
        if (table != Py_None) memcpy(self->harmless[i], PyBytes_AS_STRING(table), 256);
        c0 = copy[0];
        if (class_of[c0] == 0xff) {
            class_of[c0] = (unsigned char)classes;
            self->class_words[classes][0] = -1;
            classes++;
        }
        cls = class_of[c0];
        {   /* append the word to its class */
            int used = 0;
            while (self->class_words[cls][used] >= 0) used++;
            self->class_words[cls][used] = (signed char)i;
            self->class_words[cls][used + 1] = -1;
        }
        for (c = 0; c < 256; c++) {
            if (lower_table[c] == c0) self->first[c] |= (uint64_t)1 << cls;
            if (lower_table[c] == copy[1]) self->second[c] |= (uint64_t)1 << cls;
            if (length == 2 || lower_table[c] == copy[2]) self->third[c] |= (uint64_t)1 << cls;
        }
    }
    self->key_count = key_count;
    memset(self->nibbles, 0, sizeof self->nibbles);
    for (i = 0; i < 256; i++) {
        unsigned char first = fold_buckets(self->first[i]), second = fold_buckets(self->second[i]);
        unsigned char third = fold_buckets(self->third[i]);
        self->nibbles[0][i & 15] |= first;
        self->nibbles[1][i >> 4] |= first;
        self->nibbles[2][i & 15] |= second;
        self->nibbles[3][i >> 4] |= second;
        self->nibbles[4][i & 15] |= third;
        self->nibbles[5][i >> 4] |= third;
    }
    self->simd = 0;
#if defined(__x86_64__) && defined(__GNUC__)
    if (simd)
        self->simd = __builtin_cpu_supports("avx2") ? 2 : __builtin_cpu_supports("ssse3") ? 1 : 0;
#endif
    Py_INCREF(mask);
    self->mask = mask;
    return 0;
}

static PyObject *Lane_redact(Lane *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer expected = {0};
    PyObject *text_object, *result = NULL;
    const unsigned char *t;
    Py_ssize_t n, hit_count = 0, h, member_start = -1, member_end = -1, loose = -1;
    Py_ssize_t edit_count = 0, edit_size = 8, out_length, mask_length;
    Hit *hits = NULL;
    Edit *edits = NULL;
    int credentials_seen = 0, has_expected = 0, credentials_index = self->key_count - 1;

    if (nargs != 2 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "redact(text: bytes, credentials: buffer | None)");
        return NULL;
    }
    if (!self->nwords) { PyErr_SetString(PyExc_RuntimeError, "Lane not initialised"); return NULL; }
    text_object = args[0];
    t = (const unsigned char *)PyBytes_AS_STRING(text_object);
    n = PyBytes_GET_SIZE(text_object);
    if (args[1] != Py_None) {
        if (PyObject_GetBuffer(args[1], &expected, PyBUF_SIMPLE) < 0) return NULL;
        has_expected = 1;
    }
    hits = scan(self, t, n, &hit_count);
    if (!hits) goto done;
    edits = PyMem_Malloc(edit_size * sizeof(Edit));
    if (!edits) { PyErr_NoMemory(); goto done; }

    for (h = 0; h < hit_count; h++) {
        int index = hits[h].index;
        Py_ssize_t end = hits[h].end, start = end - self->lengths[index], value_start, value_stop, elements = 0;
        if (end <= member_end && start >= member_start) continue;  /* inside the current member's value */
        if (index >= self->key_count || start == 0 || t[start - 1] != '"' || n - end < 2 || t[end] != '"'
            || t[end + 1] != ':') {
            if (self->has_harmless[index] && end < n && self->harmless[index][t[end]]) continue;
            if (loose < 0 || start < loose) loose = start;
            continue;
        }
        start -= 1;  /* the member starts at its key's opening quote */
        if (loose >= 0 && loose < start) goto walk;  /* a word outside every member */
        if (start && t[start - 1] == '\\') goto walk;  /* the opening quote may be escaped */
        loose = -1;
        value_start = end + 2;
        if (value_start >= n) goto walk;
        if (t[value_start] == '"') {
            value_stop = skip_string(t, n, value_start);
            elements = 1;
        } else if (t[value_start] == '[') {
            value_stop = skip_container(t, n, value_start, 0, &elements);
        } else if (n - value_start >= 4 && memcmp(t + value_start, "null", 4) == 0) {
            value_stop = value_start + 4;
            elements = 0;
        } else {
            goto walk;  /* an object, a number, true/false: the walk */
        }
        if (value_stop < 0) goto walk;
        member_start = start;
        member_end = value_stop;
        if (index == credentials_index) {
            if (credentials_seen || !has_expected || expected.len != value_stop - value_start
                || memcmp(expected.buf, t + value_start, expected.len) != 0)
                goto walk;
            credentials_seen = 1;
        }
        if (!elements) continue;  /* null and [] stay as they are */
        if (t[value_start] == '"' && value_stop - value_start <= 2) continue;  /* "" stays as it is */
        if (edit_count == edit_size) {
            Edit *grown = PyMem_Realloc(edits, 2 * edit_size * sizeof(Edit));
            if (!grown) { PyErr_NoMemory(); goto done; }
            edits = grown;
            edit_size *= 2;
        }
        edits[edit_count].start = value_start;
        edits[edit_count].stop = value_stop;
        edits[edit_count].count = t[value_start] == '"' ? 0 : elements;
        edit_count++;
    }
    if (loose >= 0) goto walk;
    if (!credentials_seen && has_expected) goto walk;  /* identity.credentials is not a plain member */
    if (!edit_count) { Py_INCREF(text_object); result = text_object; goto done; }

    mask_length = PyBytes_GET_SIZE(self->mask);
    out_length = n;
    for (h = 0; h < edit_count; h++) {
        Py_ssize_t count = edits[h].count;
        out_length -= edits[h].stop - edits[h].start;
        out_length += count ? 2 + count * mask_length + (count - 1) : mask_length;
    }
    result = PyBytes_FromStringAndSize(NULL, out_length);
    if (result) {
        char *out = PyBytes_AS_STRING(result);
        const char *mask = PyBytes_AS_STRING(self->mask);
        Py_ssize_t position = 0, k;
        for (h = 0; h < edit_count; h++) {
            memcpy(out, t + position, edits[h].start - position);
            out += edits[h].start - position;
            if (edits[h].count) {
                *out++ = '[';
                for (k = 0; k < edits[h].count; k++) {
                    if (k) *out++ = ',';
                    memcpy(out, mask, mask_length);
                    out += mask_length;
                }
                *out++ = ']';
            } else {
                memcpy(out, mask, mask_length);
                out += mask_length;
            }
            position = edits[h].stop;
        }
        memcpy(out, t + position, n - position);
    }
    goto done;
walk:
    Py_INCREF(Py_None);
    result = Py_None;
done:
    PyMem_Free(hits);
    PyMem_Free(edits);
    if (has_expected) PyBuffer_Release(&expected);
    return result;
}

static PyObject *Lane_scan(Lane *self, PyObject *text) {
    Py_ssize_t count = 0, h;
    Hit *hits;
    PyObject *out;
    if (!PyBytes_Check(text)) { PyErr_SetString(PyExc_TypeError, "scan(text: bytes)"); return NULL; }
    if (!self->nwords) { PyErr_SetString(PyExc_RuntimeError, "Lane not initialised"); return NULL; }
    hits = scan(self, (const unsigned char *)PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text), &count);
    if (!hits) return NULL;
    out = PyList_New(count);
    for (h = 0; out && h < count; h++) {
        PyObject *item = Py_BuildValue("(iin)", hits[h].index, 0, hits[h].end);
        if (!item) { Py_CLEAR(out); break; }
        PyList_SET_ITEM(out, h, item);
    }
    PyMem_Free(hits);
    return out;
}

static PyObject *value_end(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t start, stop, count = 0, n;
    const unsigned char *t;
    if (nargs != 2 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "value_end(text: bytes, start: int)");
        return NULL;
    }
    start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred()) return NULL;
    t = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    n = PyBytes_GET_SIZE(args[0]);
    if (start < 0 || start >= n) Py_RETURN_NONE;
    if (t[start] == '"') { stop = skip_string(t, n, start); count = 1; }
    else if (t[start] == '[') stop = skip_container(t, n, start, 0, &count);
    else if (n - start >= 4 && memcmp(t + start, "null", 4) == 0) stop = start + 4;
    else Py_RETURN_NONE;
    if (stop < 0) Py_RETURN_NONE;
    return Py_BuildValue("(nn)", stop, count);
}

static PyMethodDef Lane_methods[] = {
    {"redact", (PyCFunction)(void (*)(void))Lane_redact, METH_FASTCALL,
     "redact(text, credentials) -> the edited text, text itself (nothing to mask), or None (take the walk)"},
    {"scan", (PyCFunction)Lane_scan, METH_O,
     "scan(text) -> [(word index, 0, end)] sorted by (end, index), as CredentialScanner.scan"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Lane_members[] = {
    {"simd", T_INT, offsetof(Lane, simd), READONLY, "the scan's vector width: 2 AVX2, 1 SSSE3, 0 none"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject LaneType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "siem_pipeline._credlane.Lane",
    .tp_basicsize = sizeof(Lane),
    .tp_dealloc = (destructor)Lane_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Lane(words, key_count, harmless_after, mask): the redactor's text lane in C",
    .tp_methods = Lane_methods,
    .tp_members = Lane_members,
    .tp_init = (initproc)Lane_init,
    .tp_new = PyType_GenericNew,
};

static PyMethodDef module_methods[] = {
    {"value_end", (PyCFunction)(void (*)(void))value_end, METH_FASTCALL,
     "value_end(text, start) -> (end, elements) of the string, array or null at start, or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "siem_pipeline._credlane",
    "The redactor's text lane in C (see siem_pipeline.redact).", -1, module_methods,
};

PyMODINIT_FUNC PyInit__credlane(void) {
    PyObject *m;
    int c;
    for (c = 0; c < 256; c++) lower_table[c] = (unsigned char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    if (PyType_Ready(&LaneType) < 0) return NULL;
    m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&LaneType);
    if (PyModule_AddObject(m, "Lane", (PyObject *)&LaneType) < 0) {
        Py_DECREF(&LaneType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
