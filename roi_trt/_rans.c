/*
 * rANS core, bit-compatible with CompressAI's RansEncoder/RansDecoder
 * (64-bit state, 32-bit words, 16-bit probabilities, 4-bit bypass coding of
 * out-of-range values). Torch-free and Python 3.6-compatible so the camera
 * side (Jetson Nano, JetPack 4.6) builds it with plain gcc.
 *
 * The decoder treats its input as untrusted: every read is bounds-checked,
 * bypass lengths are capped, and a stream must end exactly where the encoder
 * started (all words consumed, state back at RANS_L).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION 16
#define BYPASS_BITS 4
#define MAX_BYPASS_VAL ((1u << BYPASS_BITS) - 1)
#define MAX_BYPASS_DIGITS 8 /* a 32-bit raw value needs at most 8 nibbles */
#define RANS_L (1ull << 31)
#define MAX_ABS_SYMBOL (1 << 30) /* keeps 2*|value| inside 31 bits */

typedef struct {
    const int32_t *cdfs;
    const int32_t *lengths;
    const int32_t *offsets;
    Py_ssize_t channels;
    Py_ssize_t stride;
} Tables;

/* ---------------------------------------------------------------- encoder */

typedef struct {
    uint32_t *buf; /* words are written backwards, from buf + cap down */
    uint32_t *ptr;
    size_t cap;
    uint64_t x;
} Encoder;

static int enc_reserve(Encoder *e) {
    /* keep room for one renormalisation word plus the two flush words */
    if ((size_t)(e->ptr - e->buf) >= 3)
        return 0;
    size_t used = e->cap - (size_t)(e->ptr - e->buf);
    size_t cap = e->cap * 2;
    uint32_t *buf = (uint32_t *)malloc(cap * sizeof(uint32_t));
    if (!buf)
        return -1;
    memcpy(buf + cap - used, e->ptr, used * sizeof(uint32_t));
    free(e->buf);
    e->buf = buf;
    e->cap = cap;
    e->ptr = buf + cap - used;
    return 0;
}

static int enc_put(Encoder *e, uint32_t start, uint32_t freq) {
    if (enc_reserve(e))
        return -1;
    uint64_t x_max = ((RANS_L >> PRECISION) << 32) * freq;
    if (e->x >= x_max) {
        *--e->ptr = (uint32_t)e->x;
        e->x >>= 32;
    }
    e->x = ((e->x / freq) << PRECISION) + (e->x % freq) + start;
    return 0;
}

static int enc_put_bits(Encoder *e, uint32_t val) {
    if (enc_reserve(e))
        return -1;
    uint64_t x_max = ((RANS_L >> PRECISION) << 32) * (1u << (PRECISION - BYPASS_BITS));
    if (e->x >= x_max) {
        *--e->ptr = (uint32_t)e->x;
        e->x >>= 32;
    }
    e->x = (e->x << BYPASS_BITS) | val;
    return 0;
}

/* Symbols are coded last to first so the decoder reads them first to last;
 * within one symbol the sub-symbols (main, bypass count, raw nibbles) are
 * likewise put in reverse. Symbol i belongs to channel i / plane (CDF index =
 * channel, as CompressAI's EntropyBottleneck), so no index array is needed.
 * Returns 0, -1 (no memory) or -2 (bad input). */
static int encode_symbols(Encoder *e, const int32_t *symbols, Py_ssize_t plane, const Tables *t, Py_ssize_t *bad_at) {
    for (Py_ssize_t c = t->channels - 1; c >= 0; --c) {
        const int32_t *cdf = t->cdfs + c * t->stride;
        int64_t max_value = t->lengths[c] - 2;
        for (Py_ssize_t i = (c + 1) * plane - 1; i >= c * plane; --i) {
            if (symbols[i] > MAX_ABS_SYMBOL || symbols[i] < -MAX_ABS_SYMBOL) {
                *bad_at = i;
                return -2;
            }
            int64_t value = (int64_t)symbols[i] - t->offsets[c];
            uint32_t raw = 0;
            if (value < 0) {
                raw = (uint32_t)(-2 * value - 1);
                value = max_value;
            } else if (value >= max_value) {
                raw = (uint32_t)(2 * (value - max_value));
                value = max_value;
            }
            if (value == max_value) {
                uint32_t n_bypass = 0;
                while (n_bypass < MAX_BYPASS_DIGITS && (raw >> (n_bypass * BYPASS_BITS)) != 0)
                    ++n_bypass;
                for (uint32_t j = n_bypass; j-- > 0;)
                    if (enc_put_bits(e, (raw >> (j * BYPASS_BITS)) & MAX_BYPASS_VAL))
                        return -1;
                if (enc_put_bits(e, n_bypass % MAX_BYPASS_VAL))
                    return -1;
                for (uint32_t k = n_bypass / MAX_BYPASS_VAL; k > 0; --k)
                    if (enc_put_bits(e, MAX_BYPASS_VAL))
                        return -1;
            }
            if (enc_put(e, (uint32_t)cdf[value], (uint32_t)(cdf[value + 1] - cdf[value])))
                return -1;
        }
    }
    if (enc_reserve(e))
        return -1;
    e->ptr -= 2;
    e->ptr[0] = (uint32_t)e->x;
    e->ptr[1] = (uint32_t)(e->x >> 32);
    return 0;
}

/* ---------------------------------------------------------------- decoder */

typedef struct {
    const uint32_t *ptr;
    const uint32_t *end;
    uint64_t x;
} Decoder;

static int dec_renorm(Decoder *d) {
    if (d->x < RANS_L) {
        if (d->ptr >= d->end)
            return -1;
        d->x = (d->x << 32) | *d->ptr++;
    }
    return 0;
}

static int dec_get_bits(Decoder *d, uint32_t *val) {
    *val = (uint32_t)(d->x & MAX_BYPASS_VAL);
    d->x >>= BYPASS_BITS;
    return dec_renorm(d);
}

#define BUCKET_BITS 6 /* symbol lookup: 64 buckets of the 2^16 cumulative range per channel */
#define BUCKET_SHIFT (PRECISION - BUCKET_BITS)

/* first[c << BUCKET_BITS | b] = largest s with cdf[s] <= b << BUCKET_SHIFT */
static void fill_buckets(const Tables *t, int32_t *first) {
    for (Py_ssize_t c = 0; c < t->channels; ++c) {
        const int32_t *cdf = t->cdfs + c * t->stride;
        int32_t s = 0;
        for (int32_t b = 0; b < (1 << BUCKET_BITS); ++b) {
            while (cdf[s + 1] <= (b << BUCKET_SHIFT))
                ++s;
            first[(c << BUCKET_BITS) | b] = s;
        }
    }
}

/* Symbol i of `out` is decoded with the CDF of channel i / plane, as encode_symbols coded it. */
static const char *decode_symbols(Decoder *d, int32_t *out, Py_ssize_t plane, const Tables *t, const int32_t *first) {
    for (Py_ssize_t c = 0; c < t->channels; ++c) {
        const int32_t *cdf = t->cdfs + c * t->stride;
        const int32_t *buckets = first + (c << BUCKET_BITS);
        int32_t max_value = t->lengths[c] - 2;
        for (Py_ssize_t i = c * plane; i < (c + 1) * plane; ++i) {
            uint32_t cum = (uint32_t)(d->x & ((1u << PRECISION) - 1));
            /* largest s with cdf[s] <= cum: start from its bucket; cdf[length - 1] == 2^16 > cum bounds the scan */
            int32_t lo = buckets[cum >> BUCKET_SHIFT];
            while ((uint32_t)cdf[lo + 1] <= cum)
                ++lo;
            uint32_t start = (uint32_t)cdf[lo], freq = (uint32_t)(cdf[lo + 1] - cdf[lo]);
            d->x = freq * (d->x >> PRECISION) + (d->x & ((1u << PRECISION) - 1)) - start;
            if (dec_renorm(d))
                return "truncated stream";
            int64_t value = lo;
            if (lo == max_value) {
                uint32_t val, n_bypass = 0;
                do {
                    if (dec_get_bits(d, &val))
                        return "truncated stream";
                    n_bypass += val;
                    if (n_bypass > MAX_BYPASS_DIGITS)
                        return "corrupt stream (bypass length)";
                } while (val == MAX_BYPASS_VAL);
                uint32_t raw = 0;
                for (uint32_t j = 0; j < n_bypass; ++j) {
                    if (dec_get_bits(d, &val))
                        return "truncated stream";
                    raw |= val << (j * BYPASS_BITS);
                }
                value = raw >> 1;
                value = (raw & 1) ? -value - 1 : value + max_value;
            }
            value += t->offsets[c];
            if (value > INT32_MAX || value < INT32_MIN)
                return "corrupt stream (value out of range)";
            out[i] = (int32_t)value;
        }
    }
    if (d->ptr != d->end)
        return "corrupt stream (trailing data)";
    if (d->x != RANS_L)
        return "corrupt stream (final state)";
    return NULL;
}

/* ---------------------------------------------------------------- Python glue */

static const char *check_tables(const Tables *t) {
    for (Py_ssize_t c = 0; c < t->channels; ++c) {
        const int32_t *cdf = t->cdfs + c * t->stride;
        int32_t length = t->lengths[c];
        if (length < 3 || length > t->stride)
            return "CDF length out of range";
        if (cdf[0] != 0 || cdf[length - 1] != (1 << PRECISION))
            return "CDF must run from 0 to 2^16";
        for (int32_t k = 1; k < length; ++k)
            if (cdf[k] <= cdf[k - 1])
                return "CDF must be strictly increasing";
    }
    return NULL;
}

/* Fills `t` from the buffers; returns NULL or an error message. */
static const char *make_tables(Tables *t, Py_buffer *cdfs, Py_buffer *lengths, Py_buffer *offsets, Py_ssize_t stride) {
    t->channels = lengths->len / 4;
    t->stride = stride;
    if (stride < 3 || offsets->len != lengths->len || cdfs->len != t->channels * stride * 4 || t->channels == 0)
        return "inconsistent table sizes";
    t->cdfs = (const int32_t *)cdfs->buf;
    t->lengths = (const int32_t *)lengths->buf;
    t->offsets = (const int32_t *)offsets->buf;
    return check_tables(t);
}

/* Whether a buffer of `len` bytes holds one int32 per symbol of `plane` per channel (overflow-safe). */
static int fits_latent(Py_ssize_t len, Py_ssize_t plane, const Tables *t) {
    return plane >= 0 && len % (4 * t->channels) == 0 && len / 4 / t->channels == plane;
}

PyDoc_STRVAR(encode_doc, "encode(symbols, plane, cdfs, cdf_lengths, offsets, stride) -> bytes\n\n"
                         "symbols: contiguous int32, channels x plane (plane = latent height x width), coded\n"
                         "with the CDF of their channel; the tables are contiguous int32 buffers, cdfs\n"
                         "channels x stride.");

static PyObject *rans_encode(PyObject *self, PyObject *args) {
    Py_buffer sym, cdfs, lengths, offsets;
    Py_ssize_t plane, stride;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*ny*y*y*n", &sym, &plane, &cdfs, &lengths, &offsets, &stride))
        return NULL;
    Tables t;
    const char *err = make_tables(&t, &cdfs, &lengths, &offsets, stride);
    if (!err && !fits_latent(sym.len, plane, &t))
        err = "symbols are not channels x plane int32 values";
    if (err) {
        PyErr_SetString(PyExc_ValueError, err);
        goto done;
    }
    Py_ssize_t bad_at = -1;
    Encoder e;
    e.cap = (size_t)(sym.len / 16) + 16;
    e.buf = (uint32_t *)malloc(e.cap * sizeof(uint32_t));
    if (!e.buf) {
        PyErr_NoMemory();
        goto done;
    }
    e.ptr = e.buf + e.cap;
    e.x = RANS_L;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = encode_symbols(&e, (const int32_t *)sym.buf, plane, &t, &bad_at);
    Py_END_ALLOW_THREADS
    if (rc == -1)
        PyErr_NoMemory();
    else if (rc == -2)
        PyErr_Format(PyExc_ValueError, "symbol %zd: value out of range", bad_at);
    else
        result = PyBytes_FromStringAndSize((const char *)e.ptr, (Py_ssize_t)((e.buf + e.cap - e.ptr) * 4));
    free(e.buf);
done:
    PyBuffer_Release(&sym);
    PyBuffer_Release(&cdfs);
    PyBuffer_Release(&lengths);
    PyBuffer_Release(&offsets);
    return result;
}

PyDoc_STRVAR(decode_doc, "decode(data, plane, cdfs, cdf_lengths, offsets, stride, out) -> None\n\n"
                         "Decodes channels x plane symbols into the writable int32 buffer `out`, each with\n"
                         "the CDF of its channel; raises ValueError on a truncated or corrupt stream.");

static PyObject *rans_decode(PyObject *self, PyObject *args) {
    Py_buffer data, cdfs, lengths, offsets, out;
    Py_ssize_t plane, stride;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*ny*y*y*nw*", &data, &plane, &cdfs, &lengths, &offsets, &stride, &out))
        return NULL;
    Tables t;
    const char *err = make_tables(&t, &cdfs, &lengths, &offsets, stride);
    if (!err && !fits_latent(out.len, plane, &t))
        err = "output is not channels x plane int32 values";
    if (err) {
        PyErr_SetString(PyExc_ValueError, err);
        goto done;
    }
    if (data.len % 4 != 0 || data.len < 8) {
        PyErr_SetString(PyExc_ValueError, "truncated stream");
        goto done;
    }
    int32_t *first = (int32_t *)malloc((size_t)t.channels * sizeof(int32_t) << BUCKET_BITS);
    if (!first) {
        PyErr_NoMemory();
        goto done;
    }
    fill_buckets(&t, first);
    Decoder d;
    /* words are little-endian on every supported target (x86-64, aarch64), as in CompressAI */
    const uint32_t *words = (const uint32_t *)data.buf;
    d.x = (uint64_t)words[0] | ((uint64_t)words[1] << 32);
    d.ptr = words + 2;
    d.end = words + data.len / 4;
    Py_BEGIN_ALLOW_THREADS
    err = decode_symbols(&d, (int32_t *)out.buf, plane, &t, first);
    Py_END_ALLOW_THREADS
    free(first);
    if (err) {
        PyErr_SetString(PyExc_ValueError, err);
    } else {
        Py_INCREF(Py_None);
        result = Py_None;
    }
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&cdfs);
    PyBuffer_Release(&lengths);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"encode", rans_encode, METH_VARARGS, encode_doc},
    {"decode", rans_decode, METH_VARARGS, decode_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rans", "CompressAI-compatible rANS core.", -1, methods};

PyMODINIT_FUNC PyInit__rans(void) { return PyModule_Create(&module); }
