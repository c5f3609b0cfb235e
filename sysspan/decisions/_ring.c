/* sysspan.decisions._ring: the atomic operations on the shared-memory decision ring that
 * Python cannot do on an mmap. The writer half serves the Python API (sysspan.decisions);
 * the reader half serves sysspan's drain thread (sysspan.decisions.ring). The protocol
 * itself lives in include/sysspan_decisions.h, shared with C/C++/Rust writers. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "sysspan_decisions.h"

/* ------------------------------------------------------------------ writer side */

static void *w_base;
static size_t w_size;
static uint32_t w_pid;
static __thread uint32_t w_tid;

static void w_after_fork(void) {
    w_pid = (uint32_t)getpid();
    w_tid = 0;
}

static PyObject *ring_attach(PyObject *self, PyObject *arg) {
    PyObject *bytes_path;
    if (!PyUnicode_FSConverter(arg, &bytes_path)) return NULL;
    void *base = sysspan_ring_map(PyBytes_AS_STRING(bytes_path));
    Py_DECREF(bytes_path);
    if (!base) Py_RETURN_NONE;
    if (w_base) munmap(w_base, w_size);
    w_base = base;
    w_size = *SYSSPAN__U32(base, SYSSPAN_H_HEADER_SIZE) +
             (size_t)sysspan_ring_slot_size(base) * sysspan_ring_slot_count(base);
    static int registered;
    if (!registered) {
        pthread_atfork(NULL, NULL, w_after_fork);
        registered = 1;
    }
    w_pid = (uint32_t)getpid();
    double ratio;
    memcpy(&ratio, (char *)base + SYSSPAN_H_SAMPLE, sizeof ratio);
    uint32_t rate = *SYSSPAN__U32(base, SYSSPAN_H_RATE);
    return Py_BuildValue("(dIn)", ratio, rate,
                         (Py_ssize_t)(sysspan_ring_slot_size(base) - SYSSPAN_S_PAYLOAD));
}

static PyObject *ring_detach(PyObject *self, PyObject *unused) {
    if (w_base) munmap(w_base, w_size);
    w_base = NULL;
    Py_RETURN_NONE;
}

/* pack(value, default) -> bytes: `value` in msgpack, as msgpack-python's Packer encodes it
 * (use_bin_type): None, bool, int, float, str, bytes/bytearray (bin), list/tuple (array),
 * dict (map), subclasses as their base; anything else, an int beyond 64 bits or a str that
 * is not valid UTF-8, as what default(value) returns. Here so that a process recording its
 * first decision does not import msgpack (about 5 ms, more than a thousand records cost).
 * ValueError when nesting goes deeper than 512 (a container holding itself). */
struct pk_buf {
    char *p;
    size_t len, cap;
};

static int pk_room(struct pk_buf *b, size_t n) {
    if (b->len + n <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    char *p = PyMem_Realloc(b->p, cap);
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

/* `head` byte, then `v` big-endian in `n` bytes (0, 1, 2, 4 or 8). */
static int pk_head(struct pk_buf *b, unsigned char head, uint64_t v, int n) {
    if (pk_room(b, 1 + (size_t)n) < 0) return -1;
    b->p[b->len++] = (char)head;
    for (int i = n - 1; i >= 0; i--) b->p[b->len++] = (char)(v >> (8 * i));
    return 0;
}

/* A length-prefixed type: fix (when `fix` and n < fix_max), else the 8/16/32-bit form. */
static int pk_len(struct pk_buf *b, Py_ssize_t n, unsigned char fix, Py_ssize_t fix_max,
                  unsigned char h8, unsigned char h16, unsigned char h32) {
    if (fix && n < fix_max) return pk_head(b, (unsigned char)(fix | n), 0, 0);
    if (h8 && n < 256) return pk_head(b, h8, (uint64_t)n, 1);
    if (n < 65536) return pk_head(b, h16, (uint64_t)n, 2);
    if ((uint64_t)n <= 0xffffffffull) return pk_head(b, h32, (uint64_t)n, 4);
    PyErr_SetString(PyExc_ValueError, "too long for msgpack");
    return -1;
}

static int pk_raw(struct pk_buf *b, const char *data, Py_ssize_t n) {
    if (pk_room(b, (size_t)n) < 0) return -1;
    memcpy(b->p + b->len, data, (size_t)n);
    b->len += (size_t)n;
    return 0;
}

static int pk_value(struct pk_buf *b, PyObject *o, PyObject *dflt, int depth);

static int pk_default(struct pk_buf *b, PyObject *o, PyObject *dflt, int depth) {
    PyObject *r = PyObject_CallOneArg(dflt, o);
    if (!r) return -1;
    int rc = -1;
    if (PyUnicode_CheckExact(r) || PyBytes_CheckExact(r))
        rc = pk_value(b, r, dflt, depth + 1); /* + 1: a str default() cannot encode ends */
    else
        PyErr_SetString(PyExc_TypeError, "default() must return str or bytes");
    Py_DECREF(r);
    return rc;
}

static int pk_value(struct pk_buf *b, PyObject *o, PyObject *dflt, int depth) {
    if (depth > 512) {
        PyErr_SetString(PyExc_ValueError, "nested too deeply for msgpack");
        return -1;
    }
    if (o == Py_None) return pk_head(b, 0xc0, 0, 0);
    if (o == Py_True) return pk_head(b, 0xc3, 0, 0);
    if (o == Py_False) return pk_head(b, 0xc2, 0, 0);
    if (PyLong_Check(o)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (v == -1 && PyErr_Occurred()) return -1;
        if (overflow > 0) {
            unsigned long long u = PyLong_AsUnsignedLongLong(o);
            if (u == (unsigned long long)-1 && PyErr_Occurred()) {
                PyErr_Clear();
                return pk_default(b, o, dflt, depth);
            }
            return pk_head(b, 0xcf, u, 8);
        }
        if (overflow < 0) return pk_default(b, o, dflt, depth);
        if (v >= 0) {
            if (v < 128) return pk_head(b, (unsigned char)v, 0, 0);
            if (v < 256) return pk_head(b, 0xcc, (uint64_t)v, 1);
            if (v < 65536) return pk_head(b, 0xcd, (uint64_t)v, 2);
            if (v <= 0xffffffffll) return pk_head(b, 0xce, (uint64_t)v, 4);
            return pk_head(b, 0xcf, (uint64_t)v, 8);
        }
        if (v >= -32) return pk_head(b, (unsigned char)(int8_t)v, 0, 0);
        if (v >= -128) return pk_head(b, 0xd0, (uint64_t)v & 0xff, 1);
        if (v >= -32768) return pk_head(b, 0xd1, (uint64_t)v & 0xffff, 2);
        if (v >= -2147483648ll) return pk_head(b, 0xd2, (uint64_t)v & 0xffffffffull, 4);
        return pk_head(b, 0xd3, (uint64_t)v, 8);
    }
    if (PyFloat_Check(o)) {
        double d = PyFloat_AS_DOUBLE(o);
        uint64_t bits;
        memcpy(&bits, &d, 8);
        return pk_head(b, 0xcb, bits, 8);
    }
    if (PyUnicode_Check(o)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(o, &n);
        if (!s) { /* lone surrogates */
            PyErr_Clear();
            return pk_default(b, o, dflt, depth);
        }
        if (pk_len(b, n, 0xa0, 32, 0xd9, 0xda, 0xdb) < 0) return -1;
        return pk_raw(b, s, n);
    }
    if (PyBytes_Check(o) || PyByteArray_Check(o)) {
        int is_bytes = PyBytes_Check(o);
        Py_ssize_t n = is_bytes ? PyBytes_GET_SIZE(o) : PyByteArray_GET_SIZE(o);
        if (pk_len(b, n, 0, 0, 0xc4, 0xc5, 0xc6) < 0) return -1;
        return pk_raw(b, is_bytes ? PyBytes_AS_STRING(o) : PyByteArray_AS_STRING(o), n);
    }
    if (PyDict_Check(o)) {
        if (pk_len(b, PyDict_GET_SIZE(o), 0x80, 16, 0, 0xde, 0xdf) < 0) return -1;
        Py_ssize_t pos = 0, left = PyDict_GET_SIZE(o);
        PyObject *k, *v;
        /* default() may run code that changes the dict: hold each pair, and stop (or pad)
         * at the size written in the header, so the map stays well formed */
        while (left > 0 && PyDict_Next(o, &pos, &k, &v)) {
            Py_INCREF(k);
            Py_INCREF(v);
            int rc = pk_value(b, k, dflt, depth + 1);
            if (rc == 0) rc = pk_value(b, v, dflt, depth + 1);
            Py_DECREF(k);
            Py_DECREF(v);
            if (rc < 0) return -1;
            left--;
        }
        for (; left > 0; left--)
            if (pk_head(b, 0xc0, 0, 0) < 0 || pk_head(b, 0xc0, 0, 0) < 0) return -1;
        return 0;
    }
    if (PyList_Check(o) || PyTuple_Check(o)) {
        PyObject *seq = PySequence_Fast(o, ""); /* a list may change under default() */
        if (!seq) return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        int rc = pk_len(b, n, 0x90, 16, 0, 0xdc, 0xdd);
        for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
            PyObject *item = i < PySequence_Fast_GET_SIZE(seq) ? PySequence_Fast_GET_ITEM(seq, i)
                                                               : Py_None;
            Py_INCREF(item);
            rc = pk_value(b, item, dflt, depth + 1);
            Py_DECREF(item);
        }
        Py_DECREF(seq);
        return rc;
    }
    return pk_default(b, o, dflt, depth);
}

static PyObject *ring_pack(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "pack(value, default)");
        return NULL;
    }
    struct pk_buf b = {NULL, 0, 0};
    PyObject *out = NULL;
    if (pk_value(&b, args[0], args[1], 0) == 0)
        out = PyBytes_FromStringAndSize(b.p, (Py_ssize_t)b.len);
    PyMem_Free(b.p);
    return out;
}

/* unpack(data) -> the msgpack value in `data`, as msgpack.unpackb(data, raw=False,
 * strict_map_key=False, use_list=True) gives it, or NotImplemented for anything this does
 * not decode itself: ext types, a str that is not strict UTF-8, an unhashable map key,
 * nesting deeper than 512, a length longer than what is left, trailing bytes. The reader
 * then asks msgpack, which gives the value or the error; so whatever is decoded here is
 * what msgpack would give, and sysspan imports msgpack only for such records. */
struct up_src {
    const unsigned char *p, *end;
};

#define UP_DEFER ((PyObject *)1) /* not decoded here: let msgpack decide */

static int up_take(struct up_src *s, size_t n, const unsigned char **out) {
    if ((size_t)(s->end - s->p) < n) return -1;
    *out = s->p;
    s->p += n;
    return 0;
}

static int up_uint(struct up_src *s, int n, uint64_t *v) {
    const unsigned char *q;
    if (up_take(s, (size_t)n, &q) < 0) return -1;
    *v = 0;
    for (int i = 0; i < n; i++) *v = (*v << 8) | q[i];
    return 0;
}

static PyObject *up_value(struct up_src *s, int depth);

static PyObject *up_array(struct up_src *s, uint64_t n, int depth) {
    if (n > (uint64_t)(s->end - s->p)) return UP_DEFER; /* each element takes a byte */
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (!list) return NULL;
    for (uint64_t i = 0; i < n; i++) {
        PyObject *item = up_value(s, depth + 1);
        if (item == NULL || item == UP_DEFER) {
            Py_DECREF(list);
            return item;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

static PyObject *up_map(struct up_src *s, uint64_t n, int depth) {
    if (n > (uint64_t)(s->end - s->p) / 2) return UP_DEFER;
    PyObject *dict = PyDict_New();
    if (!dict) return NULL;
    for (uint64_t i = 0; i < n; i++) {
        PyObject *k = up_value(s, depth + 1);
        if (k == NULL || k == UP_DEFER) {
            Py_DECREF(dict);
            return k;
        }
        PyObject *v = up_value(s, depth + 1);
        if (v == NULL || v == UP_DEFER) {
            Py_DECREF(k);
            Py_DECREF(dict);
            return v;
        }
        int rc = PyDict_SetItem(dict, k, v);
        Py_DECREF(k);
        Py_DECREF(v);
        if (rc < 0) {
            Py_DECREF(dict);
            if (!PyErr_ExceptionMatches(PyExc_TypeError)) return NULL;
            PyErr_Clear(); /* an unhashable key */
            return UP_DEFER;
        }
    }
    return dict;
}

static PyObject *up_value(struct up_src *s, int depth) {
    const unsigned char *q;
    uint64_t n;
    if (depth > 512 || up_take(s, 1, &q) < 0) return UP_DEFER;
    unsigned char c = q[0];
    if (c <= 0x7f) return PyLong_FromLong(c);
    if (c >= 0xe0) return PyLong_FromLong((int8_t)c);
    if ((c & 0xe0) == 0xa0) { n = c & 0x1f; goto str; }
    if ((c & 0xf0) == 0x90) return up_array(s, c & 0x0f, depth);
    if ((c & 0xf0) == 0x80) return up_map(s, c & 0x0f, depth);
    switch (c) {
    case 0xc0: Py_RETURN_NONE;
    case 0xc2: Py_RETURN_FALSE;
    case 0xc3: Py_RETURN_TRUE;
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        if (up_uint(s, 1 << (c - 0xcc), &n) < 0) return UP_DEFER;
        return PyLong_FromUnsignedLongLong(n);
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        int size = 1 << (c - 0xd0);
        if (up_uint(s, size, &n) < 0) return UP_DEFER;
        if (size < 8 && (n >> (8 * size - 1)) & 1) n |= ~0ull << (8 * size); /* sign */
        return PyLong_FromLongLong((long long)n);
    }
    case 0xca: {
        if (up_uint(s, 4, &n) < 0) return UP_DEFER;
        uint32_t bits = (uint32_t)n;
        float f;
        memcpy(&f, &bits, 4);
        return PyFloat_FromDouble(f);
    }
    case 0xcb: {
        if (up_uint(s, 8, &n) < 0) return UP_DEFER;
        double d;
        memcpy(&d, &n, 8);
        return PyFloat_FromDouble(d);
    }
    case 0xd9: case 0xda: case 0xdb:
        if (up_uint(s, 1 << (c - 0xd9), &n) < 0) return UP_DEFER;
        goto str;
    case 0xc4: case 0xc5: case 0xc6:
        if (up_uint(s, 1 << (c - 0xc4), &n) < 0 || up_take(s, n, &q) < 0) return UP_DEFER;
        return PyBytes_FromStringAndSize((const char *)q, (Py_ssize_t)n);
    case 0xdc: case 0xdd:
        if (up_uint(s, 2 << (c - 0xdc), &n) < 0) return UP_DEFER;
        return up_array(s, n, depth);
    case 0xde: case 0xdf:
        if (up_uint(s, 2 << (c - 0xde), &n) < 0) return UP_DEFER;
        return up_map(s, n, depth);
    default:
        return UP_DEFER; /* ext types, 0xc1 */
    }
str:
    if (up_take(s, n, &q) < 0) return UP_DEFER;
    PyObject *text = PyUnicode_DecodeUTF8((const char *)q, (Py_ssize_t)n, "strict");
    if (!text && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        return UP_DEFER;
    }
    return text;
}

static PyObject *ring_unpack(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    struct up_src s = {view.buf, (const unsigned char *)view.buf + view.len};
    PyObject *value = up_value(&s, 0);
    if (value != NULL && value != UP_DEFER && s.p != s.end) { /* trailing bytes */
        Py_DECREF(value);
        value = UP_DEFER;
    }
    PyBuffer_Release(&view);
    if (value == UP_DEFER) Py_RETURN_NOTIMPLEMENTED;
    return value;
}

/* write(payload, start_ns, end_ns, line, skipped) -> 0 written, 1 full, 2 too big, -1 detached */
static PyObject *ring_write(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "write(payload: bytes, start, end, line, skipped)");
        return NULL;
    }
    unsigned long long start = PyLong_AsUnsignedLongLongMask(args[1]);
    unsigned long long end = PyLong_AsUnsignedLongLongMask(args[2]);
    unsigned long line = PyLong_AsUnsignedLongMask(args[3]);
    unsigned long long skipped = PyLong_AsUnsignedLongLongMask(args[4]);
    if (PyErr_Occurred()) return NULL;
    if (!w_base) return PyLong_FromLong(-1);
    if (!w_tid) w_tid = (uint32_t)syscall(SYS_gettid);
    int rc = sysspan_ring_write(w_base, PyBytes_AS_STRING(args[0]),
                                (uint32_t)PyBytes_GET_SIZE(args[0]), start, end, skipped, w_pid,
                                w_tid, (uint32_t)line, 0);
    return PyLong_FromLong(rc);
}

static PyObject *ring_add_skipped(PyObject *self, PyObject *arg) {
    unsigned long long n = PyLong_AsUnsignedLongLongMask(arg);
    if (PyErr_Occurred()) return NULL;
    if (w_base) sysspan_ring_add_skipped(w_base, n);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ reader side */
/* The reader never trusts the geometry in the shared header (any writer can scribble on
 * it): it passes its own and every access is checked against the buffer's length. */

typedef struct {
    Py_buffer view;
    char *slot;
    uint64_t pos, count, payload_max;
    uint64_t index; /* pos mod count: stored sequence words are the state minus this */
} slot_ref;

static int get_slot(PyObject *const *args, slot_ref *ref) {
    /* args: buf, pos, header_size, slot_size, slot_count */
    if (PyObject_GetBuffer(args[0], &ref->view, PyBUF_WRITABLE) < 0) return -1;
    ref->pos = PyLong_AsUnsignedLongLongMask(args[1]);
    uint64_t hs = PyLong_AsUnsignedLongLongMask(args[2]);
    uint64_t ss = PyLong_AsUnsignedLongLongMask(args[3]);
    uint64_t sc = PyLong_AsUnsignedLongLongMask(args[4]);
    if (PyErr_Occurred() || sc == 0 || (sc & (sc - 1)) || ss < 128 || ss % 8 || hs % 8 ||
        hs + ss * sc > (uint64_t)ref->view.len) {
        PyBuffer_Release(&ref->view);
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "ring geometry does not fit");
        return -1;
    }
    ref->count = sc;
    ref->index = ref->pos & (sc - 1);
    ref->payload_max = ss - SYSSPAN_S_PAYLOAD;
    ref->slot = (char *)ref->view.buf + hs + (ref->pos & (sc - 1)) * ss;
    return 0;
}

static void free_slot(slot_ref *ref) {
    __atomic_store_n(SYSSPAN__U32(ref->slot, SYSSPAN_S_OWNER), 0, __ATOMIC_RELAXED);
    __atomic_store_n(SYSSPAN__U64(ref->slot, SYSSPAN_S_SEQ), ref->pos + ref->count - ref->index,
                     __ATOMIC_RELEASE);
}

/* take(buf, pos, header_size, slot_size, slot_count) -> record tuple, or the slot's seq
 * (an int, the state: the stored word plus the slot's index) when it holds no committed
 * record for pos. The tuple is (start, end, skipped,
 * pid, tid, line, column, payload or None, checksum ok); the slot is freed. */
static PyObject *ring_take(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    slot_ref ref;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "take(buf, pos, header_size, slot_size, slot_count)");
        return NULL;
    }
    if (get_slot(args, &ref) < 0) return NULL;
    uint64_t seq = __atomic_load_n(SYSSPAN__U64(ref.slot, SYSSPAN_S_SEQ), __ATOMIC_ACQUIRE) +
                   ref.index;
    if (seq != ref.pos + 1) {
        PyBuffer_Release(&ref.view);
        return PyLong_FromUnsignedLongLong(seq);
    }
    uint64_t copy64[SYSSPAN_S_PAYLOAD / 8]; /* aligned like the slot */
    char *copy = (char *)copy64;
    memcpy(copy, ref.slot, SYSSPAN_S_PAYLOAD);
    uint32_t len = *SYSSPAN__U32(copy, SYSSPAN_S_LEN);
    PyObject *payload = NULL;
    int ok = 0;
    if (len <= ref.payload_max) {
        payload = PyBytes_FromStringAndSize(ref.slot + SYSSPAN_S_PAYLOAD, len);
        if (!payload) {
            PyBuffer_Release(&ref.view);
            return NULL;
        }
        /* checksum over the copies, so what is returned is what was checked */
        char *tmp = PyMem_Malloc(SYSSPAN_S_PAYLOAD + len);
        if (tmp) {
            memcpy(tmp, copy, SYSSPAN_S_PAYLOAD);
            memcpy(tmp + SYSSPAN_S_PAYLOAD, PyBytes_AS_STRING(payload), len);
            ok = sysspan_ring_check(tmp, ref.pos, len) == *SYSSPAN__U32(copy, SYSSPAN_S_CHECK);
            PyMem_Free(tmp);
        }
    } else {
        payload = Py_None;
        Py_INCREF(payload);
    }
    free_slot(&ref);
    PyBuffer_Release(&ref.view);
    return Py_BuildValue("(KKKIIIINO)", (unsigned long long)*SYSSPAN__U64(copy, SYSSPAN_S_START),
                         (unsigned long long)*SYSSPAN__U64(copy, SYSSPAN_S_END),
                         (unsigned long long)*SYSSPAN__U64(copy, SYSSPAN_S_SKIPPED),
                         *SYSSPAN__U32(copy, SYSSPAN_S_OWNER), *SYSSPAN__U32(copy, SYSSPAN_S_TID),
                         *SYSSPAN__U32(copy, SYSSPAN_S_LINE), *SYSSPAN__U32(copy, SYSSPAN_S_COLUMN),
                         payload, ok ? Py_True : Py_False);
}

/* skip(buf, pos, header_size, slot_size, slot_count, expected_seq) -> True when the reader
 * took the slot away from a writer that never committed (the writer's commit then fails);
 * the slot is then free for pos + slot_count. expected_seq is a state, as take returns it. */
static PyObject *ring_skip(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    slot_ref ref;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "skip(buf, pos, header_size, slot_size, slot_count, seq)");
        return NULL;
    }
    uint64_t expected = PyLong_AsUnsignedLongLongMask(args[5]);
    if (PyErr_Occurred() || get_slot(args, &ref) < 0) return NULL;
    expected -= ref.index;
    int won = __atomic_compare_exchange_n(SYSSPAN__U64(ref.slot, SYSSPAN_S_SEQ), &expected,
                                          ref.pos + ref.count - ref.index, 0, __ATOMIC_ACQ_REL,
                                          __ATOMIC_RELAXED);
    if (won) __atomic_store_n(SYSSPAN__U32(ref.slot, SYSSPAN_S_OWNER), 0, __ATOMIC_RELAXED);
    PyBuffer_Release(&ref.view);
    return PyBool_FromLong(won);
}

/* owner(buf, pos, header_size, slot_size, slot_count) -> pid that reserved the slot (0: none yet) */
static PyObject *ring_owner(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    slot_ref ref;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "owner(buf, pos, header_size, slot_size, slot_count)");
        return NULL;
    }
    if (get_slot(args, &ref) < 0) return NULL;
    uint32_t pid = __atomic_load_n(SYSSPAN__U32(ref.slot, SYSSPAN_S_OWNER), __ATOMIC_RELAXED);
    PyBuffer_Release(&ref.view);
    return PyLong_FromUnsignedLong(pid);
}

/* load(buf, offset) -> u64 read with acquire ordering (an 8-aligned offset inside buf) */
static PyObject *ring_load(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer view;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "load(buf, offset)");
        return NULL;
    }
    Py_ssize_t off = PyLong_AsSsize_t(args[1]);
    if (off == -1 && PyErr_Occurred()) return NULL;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE) < 0) return NULL;
    if (off < 0 || off % 8 || off + 8 > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "offset outside the ring");
        return NULL;
    }
    uint64_t v = __atomic_load_n(SYSSPAN__U64(view.buf, off), __ATOMIC_ACQUIRE);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong(v);
}

/* store(buf, offset, value): u64 store with release ordering */
static PyObject *ring_store(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer view;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "store(buf, offset, value)");
        return NULL;
    }
    Py_ssize_t off = PyLong_AsSsize_t(args[1]);
    unsigned long long v = PyLong_AsUnsignedLongLongMask(args[2]);
    if (PyErr_Occurred()) return NULL;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE) < 0) return NULL;
    if (off < 0 || off % 8 || off + 8 > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "offset outside the ring");
        return NULL;
    }
    __atomic_store_n(SYSSPAN__U64(view.buf, off), (uint64_t)v, __ATOMIC_RELEASE);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"attach", ring_attach, METH_O, "Map the ring at path for writing; (ratio, rate, max payload) or None."},
    {"detach", ring_detach, METH_NOARGS, "Unmap the writer's ring."},
    {"write", (PyCFunction)(void (*)(void))ring_write, METH_FASTCALL, "Write one record."},
    {"add_skipped", ring_add_skipped, METH_O, "Add to the ring's skipped counter."},
    {"pack", (PyCFunction)(void (*)(void))ring_pack, METH_FASTCALL, "A value in msgpack."},
    {"unpack", ring_unpack, METH_O, "Reader: a msgpack value, or NotImplemented (ask msgpack)."},
    {"take", (PyCFunction)(void (*)(void))ring_take, METH_FASTCALL, "Reader: take a committed record."},
    {"skip", (PyCFunction)(void (*)(void))ring_skip, METH_FASTCALL, "Reader: give up on a slot."},
    {"owner", (PyCFunction)(void (*)(void))ring_owner, METH_FASTCALL, "Reader: the pid that reserved a slot."},
    {"load", (PyCFunction)(void (*)(void))ring_load, METH_FASTCALL, "Atomic u64 load."},
    {"store", (PyCFunction)(void (*)(void))ring_store, METH_FASTCALL, "Atomic u64 store."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "sysspan.decisions._ring", NULL, -1, methods,
};

PyMODINIT_FUNC PyInit__ring(void) { return PyModule_Create(&module); }
