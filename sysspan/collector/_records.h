/* The binary records a tracer backend writes, and the parser that turns a drained batch of
 * them into records.py's objects.
 *
 * Included by both producers' extensions (the ptrace stop loop, _stoploop.c, and the libbpf
 * loader, ebpf/_bpf.c, whose BPF program writes the same layout), so the two share one parser.
 * Why C: building the records in Python (struct unpacking and slicing per record) was the
 * largest single cost of the drain thread on a syscall-heavy trace.
 *
 * Each module exposes set_record_types(...) (records.py hands over its classes once) and
 * parse_records(bytes) -> list, in the order the records were written.
 */
#ifndef SYSSPAN_RECORDS_H
#define SYSSPAN_RECORDS_H

#include <stdint.h>
#include <string.h>

/* Record kinds and flags (records.py names them too, for the tracers' own checks). */
enum { R_PAD = 0, R_SYSCALL = 1, R_START = 2, R_EXEC = 3, R_SIGNAL = 4, R_EXIT = 5 };
enum { F_RVAL = 1, F_PY_ENTRY = 2, F_PY_EXIT = 4, F_OURS = 8, F_TRUNCATED = 16, F_PY_STACK = 32 };
enum { X_THREAD = 1, X_SUPERSEDED = 2 };

typedef struct {
    uint32_t size;
    uint16_t kind;
    uint16_t flags;
    int32_t tid;
    int32_t tgid;
} rec_hdr; /* 16 bytes */

typedef struct {
    rec_hdr h;
    int64_t nr;
    uint64_t args[6];
    int64_t rval;
    uint64_t t0, t1, seq0, seq1;
    uint64_t ip, sp;
    int32_t caller;  /* the thread that entered the call (differs after a non-leader exec) */
    uint32_t nblobs;
} rec_syscall; /* 16 + 8 + 48 + 8 + 32 + 16 + 8 = 136 */

typedef struct {
    uint64_t addr;
    uint32_t len;
    uint8_t at_exit;
    uint8_t op;
    uint8_t fault;
    uint8_t pad;
} blob_hdr; /* 16 */

typedef struct {
    rec_hdr h;
    uint64_t t, seq;
    int32_t parent;
    int32_t attached;
} rec_start; /* 40 */

typedef struct {
    rec_hdr h;
    uint64_t t, seq;
    int32_t caller;
    uint32_t pathlen;
    uint32_t argvlen;
    uint32_t pad;
} rec_exec; /* 48 + data */

typedef struct {
    rec_hdr h;
    uint64_t t, seq;
    int32_t sig, has_info, code, spid;
    uint32_t suid;
    int32_t status;          /* SIGCHLD: the child's exit status or signal */
    int64_t utime, stime;    /* SIGCHLD: the child's CPU time in clock ticks */
} rec_signal; /* 72 */

typedef struct {
    rec_hdr h;
    uint64_t t, seq;
    int32_t status, has_status;
} rec_exit; /* 40; h.flags X_THREAD: one thread ended, X_SUPERSEDED: status is the
               * tid whose execve replaced it */

/* Blob operations: tracee memory (P_MEM, P_CSTR), the bytes a write to stderr carried, or
 * the pcs of --source's call site as the stop loop found it (P_STACK, u64s; _sites.h). */
enum { P_MEM = 0, P_CSTR = 1, P_STDERR = 2, P_STACK = 3 };
#define F_PY_ANY (F_PY_ENTRY | F_PY_EXIT | F_PY_STACK)

#ifdef Py_PYTHON_H
/* records.py's classes, in set_record_types' order, with the number of fields each has. */
enum { T_SYSCALL, T_RAW, T_SNAPSHOT, T_START, T_EXEC, T_SIGNAL, T_PEXIT, T_TEXIT, T_COUNT };
static const Py_ssize_t rec_fields[T_COUNT] = {13, 4, -1, 5, 6, 6, 4, 6};
static PyTypeObject *rec_types[T_COUNT];

static PyObject *set_record_types(PyObject *mod, PyObject *args) {
    PyObject *t[T_COUNT];
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!O!O!O!:set_record_types", &PyType_Type, &t[0],
                          &PyType_Type, &t[1], &PyType_Type, &t[2], &PyType_Type, &t[3],
                          &PyType_Type, &t[4], &PyType_Type, &t[5], &PyType_Type, &t[6],
                          &PyType_Type, &t[7]))
        return NULL;
    for (int k = 0; k < T_COUNT; k++) {
        if (rec_fields[k] < 0) continue;
        PyTypeObject *tp = (PyTypeObject *)t[k];
        /* The objects are made as tuple.__new__ makes a tuple subclass's instance: that is
         * only right for a named tuple with no other state and the fields filled here. */
        PyObject *fields = PyType_IsSubtype(tp, &PyTuple_Type)
                               ? PyObject_GetAttrString(t[k], "_fields") : NULL;
        Py_ssize_t n = fields && PyTuple_Check(fields) ? PyTuple_GET_SIZE(fields) : -1;
        Py_XDECREF(fields);
        PyErr_Clear();
        if (n != rec_fields[k] || tp->tp_dictoffset) {
            PyErr_Format(PyExc_TypeError, "set_record_types: %s is not a named tuple of %zd fields",
                         tp->tp_name, rec_fields[k]);
            return NULL;
        }
    }
    for (int k = 0; k < T_COUNT; k++) {
        Py_INCREF(t[k]);
        Py_XSETREF(rec_types[k], (PyTypeObject *)t[k]);
    }
    Py_RETURN_NONE;
}

/* A named tuple of type k from n new references (stolen, NULL items fail the whole). */
static PyObject *rec_new(int k, Py_ssize_t n, PyObject **items) {
    PyTypeObject *tp = rec_types[k];
    PyObject *o = NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!items[i]) goto fail;
    o = tp->tp_alloc(tp, n);
    if (!o) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) PyTuple_SET_ITEM(o, i, items[i]);
    return o;
fail:
    for (Py_ssize_t i = 0; i < n; i++) Py_XDECREF(items[i]);
    return NULL;
}

static PyObject *rec_none(void) { Py_RETURN_NONE; }
static PyObject *rec_bool(int v) { return PyBool_FromLong(v); }

/* ProcessExec's argv: the NUL-separated strings, trailing NULs dropped ([] when empty). */
static PyObject *rec_argv(const char *p, Py_ssize_t n) {
    PyObject *argv = PyList_New(0);
    if (!argv || n == 0) return argv;
    while (n > 0 && p[n - 1] == 0) n--;
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i <= n; i++) {
        if (i < n && p[i] != 0) continue;
        PyObject *s = PyUnicode_DecodeUTF8(p + start, i - start, "replace");
        if (!s || PyList_Append(argv, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(argv);
            return NULL;
        }
        Py_DECREF(s);
        start = i + 1;
    }
    return argv;
}

/* Put one entry/exit blob into its Snapshot (made on first use). */
static int rec_snapshot_put(PyObject **snap, int cstr, uint64_t addr, PyObject *data) {
    if (!*snap) {
        *snap = PyObject_CallNoArgs((PyObject *)rec_types[T_SNAPSHOT]);
        if (!*snap) return -1;
    }
    PyObject *d = PyObject_GetAttrString(*snap, cstr ? "cstr" : "mem");
    PyObject *key = PyLong_FromUnsignedLongLong(addr);
    int rc = d && key ? PyObject_SetItem(d, key, data) : -1;
    Py_XDECREF(d);
    Py_XDECREF(key);
    return rc;
}

/* The last thread's tid/tgid objects, reused while one thread's records follow each other
 * (most of a chunk, usually): two allocations fewer per syscall. */
typedef struct {
    int32_t tid, tgid;
    PyObject *tid_obj, *tgid_obj;
} rec_ids;

static PyObject *rec_id(int32_t v, int32_t *last, PyObject **obj) {
    if (!*obj || *last != v) {
        Py_XSETREF(*obj, PyLong_FromLong(v));
        if (!*obj) return NULL;
        *last = v;
    }
    return Py_NewRef(*obj);
}

static PyObject *rec_syscall_obj(const char *buf, Py_ssize_t off, Py_ssize_t end, rec_ids *ids) {
    rec_syscall r;
    memcpy(&r, buf + off, sizeof r);
    PyObject *args = PyTuple_New(6);
    if (!args) return NULL;
    for (int i = 0; i < 6; i++) {
        PyObject *a = PyLong_FromUnsignedLongLong(r.args[i]);
        if (!a) {
            Py_DECREF(args);
            return NULL;
        }
        PyTuple_SET_ITEM(args, i, a);
    }
    PyObject *stderr_data = NULL, *entry = NULL, *exit_ = NULL, *pcs = NULL;
    uint32_t stacks = 0; /* P_STACK blobs: the record is complete without Python */
    Py_ssize_t pos = off + (Py_ssize_t)sizeof r;
    for (uint32_t b = 0; b < r.nblobs; b++) {
        blob_hdr bh;
        if (pos + (Py_ssize_t)sizeof bh > end) {
            PyErr_Format(PyExc_ValueError, "record at offset %zd: blob %u past the record's end",
                         off, b);
            goto fail;
        }
        memcpy(&bh, buf + pos, sizeof bh);
        pos += sizeof bh;
        Py_ssize_t len = bh.len;
        if (len > end - pos) len = end - pos;
        if (bh.op == P_STACK) {
            stacks++;
            Py_XSETREF(pcs, PyTuple_New(len / 8));
            if (!pcs) goto fail;
            for (Py_ssize_t i = 0; i < len / 8; i++) {
                uint64_t pc;
                memcpy(&pc, buf + pos + 8 * i, 8);
                PyObject *v = PyLong_FromUnsignedLongLong(pc);
                if (!v) goto fail;
                PyTuple_SET_ITEM(pcs, i, v);
            }
            pos += ((Py_ssize_t)bh.len + 7) & ~(Py_ssize_t)7;
            continue;
        }
        PyObject *data = PyBytes_FromStringAndSize(buf + pos, len);
        if (!data) goto fail;
        pos += ((Py_ssize_t)bh.len + 7) & ~(Py_ssize_t)7;
        if (bh.op == P_STDERR) {
            Py_XSETREF(stderr_data, data);
            continue;
        }
        int rc = rec_snapshot_put(bh.at_exit ? &exit_ : &entry, bh.op == P_CSTR, bh.addr, data);
        Py_DECREF(data);
        if (rc < 0) goto fail;
    }
    PyObject *items[13] = {
        rec_id(r.caller ? r.caller : r.h.tid, &ids->tid, &ids->tid_obj),
        rec_id(r.h.tgid, &ids->tgid, &ids->tgid_obj),
        PyLong_FromLongLong(r.nr),
        args,
        r.h.flags & F_RVAL ? PyLong_FromLongLong(r.rval) : rec_none(),
        PyLong_FromUnsignedLongLong(r.t0),
        PyLong_FromUnsignedLongLong(r.t1),
        PyLong_FromUnsignedLongLong(r.seq0),
        PyLong_FromUnsignedLongLong(r.seq1),
        rec_none(),
        rec_none(),
        pcs ? pcs : rec_none(),
        stderr_data ? stderr_data : rec_none(),
    };
    stderr_data = NULL;
    pcs = NULL;
    int raw = r.nblobs > stacks || (r.h.flags & F_PY_ANY);
    PyObject *call = rec_new(T_SYSCALL, 13, items);
    if (!call || !raw) {
        Py_XDECREF(entry);
        Py_XDECREF(exit_);
        return call;
    }
    PyObject *ritems[4] = {call, PyLong_FromLong(r.h.flags), entry ? entry : rec_none(),
                           exit_ ? exit_ : rec_none()};
    return rec_new(T_RAW, 4, ritems);
fail:
    Py_DECREF(args);
    Py_XDECREF(pcs);
    Py_XDECREF(stderr_data);
    Py_XDECREF(entry);
    Py_XDECREF(exit_);
    return NULL;
}

/* The first n bytes of a record into a struct of size cap, the rest zeroed. */
static void rec_copy(void *dst, size_t cap, const char *src, Py_ssize_t n) {
    size_t k = (size_t)n < cap ? (size_t)n : cap;
    memcpy(dst, src, k);
    memset((char *)dst + k, 0, cap - k);
}

/* One non-syscall record; NULL with no exception set: a kind that makes no object. */
static PyObject *rec_event_obj(const char *buf, Py_ssize_t off, Py_ssize_t size) {
    rec_hdr h;
    memcpy(&h, buf + off, sizeof h);
    /* An exec record's strings follow its fixed part; other kinds may be shorter than their
     * struct here (the BPF program's signal record stops before the SIGCHLD fields, which it
     * never sets: has_info is 0), and the missing tail reads as zeros. */
    if (h.kind == R_EXEC && (size_t)size < sizeof(rec_exec)) {
        PyErr_Format(PyExc_ValueError, "exec record at offset %zd is %zd bytes", off, size);
        return NULL;
    }
    if (h.kind == R_START) {
        rec_start r;
        rec_copy(&r, sizeof r, buf + off, size);
        PyObject *it[5] = {PyLong_FromLong(r.h.tgid), PyLong_FromLong(r.parent),
                           PyLong_FromUnsignedLongLong(r.t), rec_bool(r.attached != 0),
                           PyLong_FromUnsignedLongLong(r.seq)};
        return rec_new(T_START, 5, it);
    }
    if (h.kind == R_EXEC) {
        rec_exec r;
        rec_copy(&r, sizeof r, buf + off, size);
        Py_ssize_t pos = off + sizeof r, end = off + size;
        Py_ssize_t pl = r.pathlen < (uint64_t)(end - pos) ? (Py_ssize_t)r.pathlen : end - pos;
        Py_ssize_t al = r.argvlen < (uint64_t)(end - pos - pl) ? (Py_ssize_t)r.argvlen
                                                                : end - pos - pl;
        PyObject *it[6] = {PyLong_FromLong(r.h.tgid), PyLong_FromLong(r.caller ? r.caller : r.h.tid),
                           PyLong_FromUnsignedLongLong(r.t),
                           PyUnicode_DecodeUTF8(buf + pos, pl, "surrogateescape"),
                           rec_argv(buf + pos + pl, al), PyLong_FromUnsignedLongLong(r.seq)};
        return rec_new(T_EXEC, 6, it);
    }
    if (h.kind == R_SIGNAL) {
        rec_signal r;
        rec_copy(&r, sizeof r, buf + off, size);
        PyObject *info;
        if (r.has_info)
            info = Py_BuildValue("(iiiIiLL)", r.sig, r.code, r.spid, r.suid, r.status,
                                 (long long)r.utime, (long long)r.stime);
        else
            info = rec_none();
        PyObject *it[6] = {PyLong_FromLong(r.h.tid), PyLong_FromLong(r.h.tgid),
                           PyLong_FromLong(r.sig), PyLong_FromUnsignedLongLong(r.t), info,
                           PyLong_FromUnsignedLongLong(r.seq)};
        return rec_new(T_SIGNAL, 6, it);
    }
    if (h.kind == R_EXIT) {
        rec_exit r;
        rec_copy(&r, sizeof r, buf + off, size);
        if (r.h.flags & (X_SUPERSEDED | X_THREAD)) {
            int superseded = (r.h.flags & X_SUPERSEDED) != 0;
            PyObject *it[6] = {PyLong_FromLong(r.h.tid), PyLong_FromLong(r.h.tgid),
                               PyLong_FromUnsignedLongLong(r.t),
                               superseded || !r.has_status ? rec_none() : PyLong_FromLong(r.status),
                               PyLong_FromUnsignedLongLong(r.seq),
                               PyLong_FromLong(superseded ? r.status : 0)};
            return rec_new(T_TEXIT, 6, it);
        }
        PyObject *it[4] = {PyLong_FromLong(r.h.tgid), PyLong_FromUnsignedLongLong(r.t),
                           r.has_status ? PyLong_FromLong(r.status) : rec_none(),
                           PyLong_FromUnsignedLongLong(r.seq)};
        return rec_new(T_PEXIT, 4, it);
    }
    return NULL; /* R_PAD and kinds this version does not know: skipped */
}

static PyObject *parse_records(PyObject *mod, PyObject *arg) {
    Py_buffer view;
    if (!rec_types[T_SYSCALL]) {
        PyErr_SetString(PyExc_RuntimeError, "parse_records before set_record_types");
        return NULL;
    }
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    const char *buf = view.buf;
    Py_ssize_t end = view.len, off = 0;
    rec_ids ids = {0, 0, NULL, NULL};
    PyObject *out = PyList_New(0);
    while (out && off < end) {
        uint32_t size;
        uint16_t kind;
        if (end - off < (Py_ssize_t)sizeof(rec_hdr)) {
            PyErr_Format(PyExc_ValueError, "a partial record at offset %zd", off);
            goto fail;
        }
        memcpy(&size, buf + off, sizeof size);
        memcpy(&kind, buf + off + 4, sizeof kind);
        if (size < sizeof(rec_hdr) || size > (uint64_t)(end - off)) {
            PyErr_Format(PyExc_ValueError, "record at offset %zd claims %u bytes of %zd", off,
                         size, end - off);
            goto fail;
        }
        PyObject *rec;
        if (kind == R_SYSCALL) {
            if (size < sizeof(rec_syscall)) {
                PyErr_Format(PyExc_ValueError, "syscall record at offset %zd is %u bytes", off,
                             size);
                goto fail;
            }
            rec = rec_syscall_obj(buf, off, off + size, &ids);
        } else {
            rec = rec_event_obj(buf, off, size);
        }
        if (!rec && PyErr_Occurred()) goto fail;
        if (rec) {
            int rc = PyList_Append(out, rec);
            Py_DECREF(rec);
            if (rc < 0) goto fail;
        }
        off += size;
    }
    Py_XDECREF(ids.tid_obj);
    Py_XDECREF(ids.tgid_obj);
    PyBuffer_Release(&view);
    return out;
fail:
    Py_XDECREF(ids.tid_obj);
    Py_XDECREF(ids.tgid_obj);
    Py_XDECREF(out);
    PyBuffer_Release(&view);
    return NULL;
}

#define RECORDS_METHODS                                                                         \
    {"set_record_types", (PyCFunction)set_record_types, METH_VARARGS,                          \
     "set_record_types(Syscall, RawSyscall, Snapshot, ProcessStart, ProcessExec, Signal, "      \
     "ProcessExit, ThreadExit): the classes parse_records makes"},                              \
    {"parse_records", (PyCFunction)parse_records, METH_O,                                      \
     "parse_records(bytes) -> list: one drained chunk's records, in the order written"}
#endif /* Py_PYTHON_H */

#endif /* SYSSPAN_RECORDS_H */
