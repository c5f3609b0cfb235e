/* Loads sysspan.bpf.c's object through libbpf and hands its ring buffer to Python.
 *
 * Why C: the records are read in batches without the GIL (the ring is polled, not woken per
 * record) and come out as the same bytes the ptrace stop loop's drain() returns, so the
 * same parser (_records.h, included by both extensions) reads both. The object itself is
 * compiled by setup.py (twice: without and with the fentry programs) and embedded here
 * (sysspan_bpf_obj.h), so the module needs nothing at run time but libbpf.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/types.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "records.h"
#include "_records.h"

/* The BPF program's records (records.h) must be the layout the parser reads (_records.h). */
_Static_assert(sizeof(struct ss_rec_hdr) == sizeof(rec_hdr), "record header layout");
_Static_assert(sizeof(struct ss_rec_syscall) == sizeof(rec_syscall), "syscall record layout");
_Static_assert(sizeof(struct ss_blob_hdr) == sizeof(blob_hdr), "blob header layout");
_Static_assert(sizeof(struct ss_rec_start) == sizeof(rec_start), "start record layout");
_Static_assert(sizeof(struct ss_rec_exec) == sizeof(rec_exec), "exec record layout");
_Static_assert(sizeof(struct ss_rec_signal) == sizeof(rec_signal), "signal record layout");
_Static_assert(sizeof(struct ss_rec_exit) == sizeof(rec_exit), "exit record layout");
#include "sysspan_bpf_obj.h"

#define MAX_LINKS 1024
/* Stop a drain at about this many bytes: a batch for the builder, not the whole ring. */
#define DRAIN_MAX_BYTES (1 << 20)
#define STOP_BATCH (-7001)
#define NAP_MIN_MS 2
#define NAP_MAX_MS 8
#define UNLINK_THREADS 64

/* libbpf's last message: the detail of a failed load, shown in one line. */
static char last_msg[512];

static int verbose;

static int on_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap) {
    if (verbose) {
        vfprintf(stderr, fmt, ap);
        return 0;
    }
    if (level == LIBBPF_DEBUG) return 0;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == ' ')) line[--n] = 0;
    if (n) memcpy(last_msg, line, n + 1);
    return 0;
}

typedef struct {
    PyObject_HEAD
    struct bpf_object *obj;
    struct ring_buffer *rb;
    struct bpf_link *links[MAX_LINKS];
    int nlinks;
    int handed_off; /* a child process holds the probes: closing here detaches nothing */
    int nap_ms;     /* how long drain() sleeps next when the ring is empty */
    int interrupted; /* set by interrupt(): drain() stops waiting */
    int waits;       /* wait_for_wakeups() was called: drain() sleeps in epoll, not in naps */
    int epfd, evfd, woken_fd; /* its epoll set (the ring and evfd), and the woken latch */
    char *buf;
    size_t len, cap;
} Session;

static PyObject *fail(const char *what, int err) {
    if (err < 0) err = -err;
    if (last_msg[0])
        PyErr_Format(PyExc_OSError, "%s: %s (%s)", what, strerror(err), last_msg);
    else
        PyErr_Format(PyExc_OSError, "%s: %s", what, strerror(err));
    last_msg[0] = 0;
    return NULL;
}

static int on_record(void *ctx, void *data, size_t size) {
    Session *s = ctx;
    if (s->len + size > s->cap) {
        size_t cap = s->cap ? s->cap : (1 << 16);
        while (cap < s->len + size) cap *= 2;
        char *p = realloc(s->buf, cap);
        if (!p) return -ENOMEM;
        s->buf = p;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, size);
    s->len += size;
    return s->len >= DRAIN_MAX_BYTES ? STOP_BATCH : 0;
}

/* Sets fentry_<i>/fexit_<i> to trace the kernel function targets[i]; the other slots are not
 * loaded. A trampoline program is verified against its one target, so this is before loading. */
static int set_fentry_targets(struct bpf_object *obj, PyObject *targets) {
    Py_ssize_t n = PySequence_Length(targets);
    if (n < 0) return -1;
    for (int i = 0;; i++) {
        char name[32];
        snprintf(name, sizeof name, "fentry_%d", i);
        struct bpf_program *enter = bpf_object__find_program_by_name(obj, name);
        snprintf(name, sizeof name, "fexit_%d", i);
        struct bpf_program *leave = bpf_object__find_program_by_name(obj, name);
        if (!enter || !leave) {
            if (i < n) {
                PyErr_Format(PyExc_ValueError, "at most %d fentry targets", i);
                return -1;
            }
            return 0;
        }
        if (i >= n) {
            bpf_program__set_autoload(enter, false);
            bpf_program__set_autoload(leave, false);
            continue;
        }
        PyObject *item = PySequence_GetItem(targets, i);
        const char *func = item ? PyUnicode_AsUTF8(item) : NULL;
        int err = func ? bpf_program__set_attach_target(enter, 0, func) : -EINVAL;
        if (!err) err = bpf_program__set_attach_target(leave, 0, func);
        Py_XDECREF(item);
        if (!func) return -1;
        if (err) {
            fail(func, err);
            return -1;
        }
    }
}

/* The kernel types the object's CO-RE relocations need, in a descriptor (its /proc path in
 * ``path``), when this is the kernel the loader was built on: then libbpf need not read and
 * parse all of /sys/kernel/btf/vmlinux (several MB, about 10 ms). The kernel is known by its
 * notes, which hold its build ID (setup.py embeds the BTF only where they do). -1 otherwise,
 * and libbpf uses the kernel's own BTF. */
static int built_in_btf(char *path, size_t size) {
    if (!sysspan_min_btf_len || !sysspan_kernel_notes_len) return -1;
    unsigned char notes[4096];
    int fd = open("/sys/kernel/notes", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, notes, sizeof notes);
    close(fd);
    if (n != (ssize_t)sysspan_kernel_notes_len || memcmp(notes, sysspan_kernel_notes, (size_t)n)) {
        if (verbose) fprintf(stderr, "sysspan ebpf: not the kernel built on: CO-RE from its own BTF\n");
        return -1;
    }
    fd = memfd_create("sysspan-btf", MFD_CLOEXEC);
    if (fd < 0) return -1;
    if (write(fd, sysspan_min_btf, sysspan_min_btf_len) != (ssize_t)sysspan_min_btf_len) {
        close(fd);
        return -1;
    }
    snprintf(path, size, "/proc/self/fd/%d", fd);
    if (verbose) fprintf(stderr, "sysspan ebpf: the kernel built on: CO-RE from the BTF built in\n");
    return fd;
}

static int Session_init(Session *s, PyObject *args, PyObject *kw) {
    static char *names[] = {"ring_bytes", "fentry", "max_entries", "unused", NULL};
    unsigned long ring_bytes;
    PyObject *targets = NULL, *sizes = NULL, *unused = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "k|OO!O", names, &ring_bytes, &targets,
                                     &PyDict_Type, &sizes, &unused))
        return -1;
    const char *debug = getenv("SYSSPAN_EBPF_DEBUG");
    verbose = debug && *debug;
    libbpf_set_print(on_libbpf_print);
    last_msg[0] = 0;
    char btf_path[64];
    int btf_fd = built_in_btf(btf_path, sizeof btf_path);
    LIBBPF_OPTS(bpf_object_open_opts, opts, .btf_custom_path = btf_fd >= 0 ? btf_path : NULL);
    /* the object with the fentry programs only when they are asked for (libbpf opens and
     * relocates every program of an object, loaded or not) */
    int fentry = targets && PyObject_IsTrue(targets) > 0;
    struct bpf_object *obj = fentry
        ? bpf_object__open_mem(sysspan_bpf_fentry_obj, sysspan_bpf_fentry_obj_len, &opts)
        : bpf_object__open_mem(sysspan_bpf_obj, sysspan_bpf_obj_len, &opts);
    if (!obj) {
        if (btf_fd >= 0) close(btf_fd);
        fail("opening the eBPF object", errno);
        return -1;
    }
    s->obj = obj;
    struct bpf_map *events = bpf_object__find_map_by_name(obj, "events");
    int err = events ? bpf_map__set_max_entries(events, (__u32)ring_bytes) : -ENOENT;
    if (err) {
        if (btf_fd >= 0) close(btf_fd);
        fail("sizing the ring buffer", err);
        return -1;
    }
    /* a hash map's buckets are allocated and zeroed whole at load (65,536 of them: 1 MiB,
     * 0.3 ms): the caller sizes them for whom it traces */
    PyObject *key, *value;
    Py_ssize_t at = 0;
    while (sizes && PyDict_Next(sizes, &at, &key, &value)) {
        const char *name = PyUnicode_AsUTF8(key);
        unsigned long n = name ? PyLong_AsUnsignedLong(value) : 0;
        if (PyErr_Occurred()) {
            if (btf_fd >= 0) close(btf_fd);
            return -1;
        }
        struct bpf_map *m = bpf_object__find_map_by_name(obj, name);
        err = m ? bpf_map__set_max_entries(m, (__u32)n) : -ENOENT;
        if (err) {
            if (btf_fd >= 0) close(btf_fd);
            fail(name, err);
            return -1;
        }
    }
    /* attached by attach(), to the tracepoints chosen there */
    struct bpf_program *prog;
    bpf_object__for_each_program(prog, obj) bpf_program__set_autoattach(prog, false);
    PyObject *none = PyTuple_New(0);
    err = none ? set_fentry_targets(obj, targets ? targets : none) : -1;
    Py_XDECREF(none);
    /* the programs this run does not attach are not loaded (each is verified at load) */
    PyObject *skip = !err && unused ? PySequence_Fast(unused, "unused must be a sequence") : NULL;
    if (unused && !skip) err = -1;
    for (Py_ssize_t i = 0; skip && i < PySequence_Fast_GET_SIZE(skip); i++) {
        const char *name = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(skip, i));
        struct bpf_program *p = name ? bpf_object__find_program_by_name(obj, name) : NULL;
        if (!p) {
            if (name) PyErr_Format(PyExc_KeyError, "no program %s", name);
            err = -1;
            break;
        }
        bpf_program__set_autoload(p, false);
    }
    Py_XDECREF(skip);
    if (err) {
        if (btf_fd >= 0) close(btf_fd);
        return -1;
    }
    Py_BEGIN_ALLOW_THREADS
    err = bpf_object__load(obj);
    Py_END_ALLOW_THREADS
    if (btf_fd >= 0) close(btf_fd); /* libbpf reads it while loading */
    if (err) {
        fail("loading the eBPF programs", err);
        return -1;
    }
    s->rb = ring_buffer__new(bpf_map__fd(events), on_record, s, NULL);
    if (!s->rb) {
        fail("opening the ring buffer", errno);
        return -1;
    }
    return 0;
}

static int map_fd(Session *s, const char *name) {
    struct bpf_map *m = s->obj ? bpf_object__find_map_by_name(s->obj, name) : NULL;
    if (!m) {
        PyErr_Format(PyExc_KeyError, "no map %s", name);
        return -1;
    }
    return bpf_map__fd(m);
}

static PyObject *Session_update(Session *s, PyObject *args) {
    const char *name;
    Py_buffer key, value;
    if (!PyArg_ParseTuple(args, "sy*y*", &name, &key, &value)) return NULL;
    int fd = map_fd(s, name);
    int err = fd < 0 ? 0 : bpf_map_update_elem(fd, key.buf, value.buf, BPF_ANY);
    PyBuffer_Release(&key);
    PyBuffer_Release(&value);
    if (fd < 0) return NULL;
    if (err) return fail(name, errno);
    Py_RETURN_NONE;
}

static PyObject *Session_attach(Session *s, PyObject *args) {
    const char *prog_name, *category, *tp;
    if (!PyArg_ParseTuple(args, "sss", &prog_name, &category, &tp)) return NULL;
    struct bpf_program *prog = s->obj ? bpf_object__find_program_by_name(s->obj, prog_name) : NULL;
    if (!prog) {
        PyErr_Format(PyExc_KeyError, "no program %s", prog_name);
        return NULL;
    }
    if (s->nlinks >= MAX_LINKS) {
        PyErr_SetString(PyExc_OSError, "too many tracepoints");
        return NULL;
    }
    struct bpf_link *link = bpf_program__attach_tracepoint(prog, category, tp);
    if (!link) {
        char what[256];
        snprintf(what, sizeof what, "attaching to %s:%s", category, tp);
        return fail(what, errno);
    }
    s->links[s->nlinks++] = link;
    Py_RETURN_NONE;
}

/* Attaches fentry_<slot> and fexit_<slot> to the kernel function given for the slot. */
static PyObject *Session_attach_fentry(Session *s, PyObject *args) {
    int slot;
    if (!PyArg_ParseTuple(args, "i", &slot)) return NULL;
    char names[2][32];
    snprintf(names[0], sizeof names[0], "fentry_%d", slot);
    snprintf(names[1], sizeof names[1], "fexit_%d", slot);
    struct bpf_link *links[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        struct bpf_program *prog =
            s->obj ? bpf_object__find_program_by_name(s->obj, names[k]) : NULL;
        if (!prog || bpf_program__fd(prog) < 0) {
            if (links[0]) bpf_link__destroy(links[0]);
            PyErr_Format(PyExc_KeyError, "no loaded program %s", names[k]);
            return NULL;
        }
        if (s->nlinks + k >= MAX_LINKS) {
            PyErr_SetString(PyExc_OSError, "too many probes");
            return NULL;
        }
        links[k] = bpf_program__attach_trace(prog);
        if (!links[k]) {
            int err = errno;
            if (links[0]) bpf_link__destroy(links[0]);
            return fail(names[k], err);
        }
    }
    s->links[s->nlinks++] = links[0];
    s->links[s->nlinks++] = links[1];
    Py_RETURN_NONE;
}

/* From now on drain() sleeps until a record wakes it (the programs do once the ring holds
 * cfg.wake_at bytes) or its timeout passes, instead of looking at the ring every few ms. */
static PyObject *Session_wait_for_wakeups(Session *s, PyObject *noargs) {
    if (s->waits) Py_RETURN_NONE;
    int woken = map_fd(s, "woken");
    struct bpf_map *events = s->obj ? bpf_object__find_map_by_name(s->obj, "events") : NULL;
    if (woken < 0 || !events) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyError, "no map events");
        return NULL;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int ev = ep < 0 ? -1 : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event e = {.events = EPOLLIN};
    if (ev < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, bpf_map__fd(events), &e) < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e) < 0) {
        int err = errno;
        if (ep >= 0) close(ep);
        if (ev >= 0) close(ev);
        return fail("waiting for the ring buffer", err);
    }
    s->epfd = ep;
    s->evfd = ev;
    s->woken_fd = woken;
    s->waits = 1;
    Py_RETURN_NONE;
}

/* Whatever records are ready, up to about DRAIN_MAX_BYTES, waiting up to timeout_ms for the
 * first; b"" when none came. */
static PyObject *Session_drain(Session *s, PyObject *args) {
    int timeout_ms;
    if (!PyArg_ParseTuple(args, "i", &timeout_ms)) return NULL;
    if (!s->rb) {
        PyErr_SetString(PyExc_ValueError, "session closed");
        return NULL;
    }
    int err = 0;
    s->len = 0;
    Py_BEGIN_ALLOW_THREADS
    int waited = 0;
    for (;;) {
        err = ring_buffer__consume(s->rb);
        if (err == STOP_BATCH) err = 0;
        if (err < 0 || s->len || waited >= timeout_ms) break;
        if (__atomic_load_n(&s->interrupted, __ATOMIC_RELAXED)) break;
        if (s->waits) {
            /* let the next record past wake_at wake us, then look once more before sleeping:
             * one written before the latch was clear woke nobody */
            __u32 key = 0, zero = 0;
            bpf_map_update_elem(s->woken_fd, &key, &zero, BPF_ANY);
            err = ring_buffer__consume(s->rb);
            if (err == STOP_BATCH) err = 0;
            if (err < 0 || s->len) break;
            struct epoll_event ev[2];
            epoll_wait(s->epfd, ev, 2, timeout_ms);
            waited = timeout_ms;
            continue;
        }
        /* an idle ring is looked at less and less often (up to every NAP_MAX_MS): fewer
         * wake-ups on the CPU the traced program runs on; a record sets it back */
        if (s->nap_ms < NAP_MIN_MS) s->nap_ms = NAP_MIN_MS;
        struct timespec nap = {0, (long)s->nap_ms * 1000000};
        nanosleep(&nap, NULL);
        waited += s->nap_ms;
        if (s->nap_ms < NAP_MAX_MS) s->nap_ms *= 2;
    }
    if (s->len) s->nap_ms = NAP_MIN_MS;
    Py_END_ALLOW_THREADS
    if (err < 0) return fail("reading the ring buffer", err);
    return PyBytes_FromStringAndSize(s->buf, (Py_ssize_t)s->len);
}

/* Makes a drain() waiting for records return now (and later ones not wait): the run is over,
 * and its last records are read by drain(0) calls. */
static PyObject *Session_interrupt(Session *s, PyObject *noargs) {
    __atomic_store_n(&s->interrupted, 1, __ATOMIC_RELAXED);
    if (s->waits) {
        __u64 one = 1;
        (void)!write(s->evfd, &one, sizeof one);
    }
    Py_RETURN_NONE;
}

/* The per-CPU counters of a PERCPU_ARRAY map's entry, summed. */
static PyObject *Session_percpu_sum(Session *s, PyObject *args) {
    const char *name;
    unsigned int key;
    if (!PyArg_ParseTuple(args, "sI", &name, &key)) return NULL;
    int fd = map_fd(s, name);
    if (fd < 0) return NULL;
    int n = libbpf_num_possible_cpus();
    if (n <= 0) return fail("counting CPUs", n);
    __u64 *vals = calloc((size_t)n, sizeof(__u64));
    if (!vals) return PyErr_NoMemory();
    if (bpf_map_lookup_elem(fd, &key, vals)) {
        free(vals);
        return fail(name, errno);
    }
    unsigned long long sum = 0;
    for (int i = 0; i < n; i++) sum += vals[i];
    free(vals);
    return PyLong_FromUnsignedLongLong(sum);
}

static void unlink_all(Session *s);

static void session_close(Session *s) {
    unlink_all(s);
    if (s->rb) ring_buffer__free(s->rb);
    s->rb = NULL;
    if (s->obj) bpf_object__close(s->obj);
    s->obj = NULL;
    if (s->waits) {
        close(s->epfd);
        close(s->evfd);
        s->waits = 0;
    }
    free(s->buf);
    s->buf = NULL;
    s->len = s->cap = 0;
}

typedef struct {
    Session *s;
    int first, step;
} unlink_job;

static void *unlink_some(void *arg) {
    unlink_job *j = arg;
    for (int i = j->first; i < j->s->nlinks; i += j->step) bpf_link__destroy(j->s->links[i]);
    return NULL;
}

/* Detaching one tracepoint waits for an RCU grace period (tens of milliseconds on some
 * machines): the links are destroyed from several threads, so the waits overlap. */
static void unlink_all(Session *s) {
    if (s->handed_off) { /* the child's descriptors keep them attached: only ours to free */
        for (int i = 0; i < s->nlinks; i++) {
            bpf_link__disconnect(s->links[i]);
            bpf_link__destroy(s->links[i]);
        }
        s->nlinks = 0;
        return;
    }
    pthread_t threads[UNLINK_THREADS];
    unlink_job jobs[UNLINK_THREADS];
    int n = s->nlinks < UNLINK_THREADS ? s->nlinks : UNLINK_THREADS, started = 0;
    for (int i = 0; i < n; i++) {
        jobs[i] = (unlink_job){s, i, n};
        if (pthread_create(&threads[i], NULL, unlink_some, &jobs[i]) != 0) break;
        started++;
    }
    if (started < n) { /* no thread for the rest: destroy them here */
        unlink_job rest = {s, started, n};
        for (int i = started; i < n; i++) {
            rest.first = i;
            unlink_some(&rest);
        }
    }
    for (int i = 0; i < started; i++) pthread_join(threads[i], NULL);
    s->nlinks = 0;
}

static PyObject *Session_detach(Session *s, PyObject *noargs) {
    Py_BEGIN_ALLOW_THREADS
    unlink_all(s);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* -- children that run a few C calls only ----------------------------------------------------
 *
 * fork() write-protects every private page of this process, and Python then takes a page fault
 * on each page it writes afterwards, however soon the child is gone: its exit alone touches most
 * of the heap (about 1,500 faults and 2 ms per fork here). The two children of a run (the
 * command before its exec, the holder of the probes) never return to Python, so Python's heap
 * (the large anonymous mappings) is left out of them: MADV_DONTFORK for the clone, undone
 * after it. What such a child still touches is kept: its stack, its thread's TLS, and the
 * memory named in ``keep``. It is cloned with the raw system call, so no pthread_atfork handler
 * (which could touch the heap) runs in it. */

typedef struct {
    uintptr_t lo, hi;
} range_t;

#define LEAN_RANGES 512
#define LEAN_MIN_BYTES (64 << 10)

static int contains_any(uintptr_t lo, uintptr_t hi, const uintptr_t *keep, int nkeep) {
    for (int i = 0; i < nkeep; i++)
        if (keep[i] >= lo && keep[i] < hi) return 1;
    return 0;
}

/* One line of /proc/self/maps: "lo-hi perms offset dev inode   path". 0 when malformed. */
static int parse_map_line(char *line, uintptr_t *lo, uintptr_t *hi, char **perms,
                          unsigned long *inode, char **path) {
    char *p = line, *end;
    *lo = strtoul(p, &end, 16);
    if (*end != '-') return 0;
    *hi = strtoul(end + 1, &end, 16);
    if (*end != ' ') return 0;
    *perms = p = end + 1;
    for (int field = 0; field < 3; field++) { /* the ends of perms, offset, dev */
        p = strchr(p, ' ');
        if (!p) return 0;
        if (field == 0) *p = 0;
        p++;
    }
    *inode = strtoul(p, &end, 10);
    while (*end == ' ') end++;
    *path = end;
    return 1;
}

/* The anonymous private writable mappings of at least LEAN_MIN_BYTES that hold none of
 * ``keep`` and do not directly follow a file mapping (a library's .bss is such a tail); and
 * libpython's data (the mapping holding Py_None, with the .bss tail after it: its static
 * objects' reference counts are written all the time), unless the C library is the same file
 * (a static build: the child runs C library code). */
static int heap_ranges(range_t *out, const uintptr_t *keep, int nkeep) {
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    uintptr_t py_addr = (uintptr_t)Py_None, libc_addr = (uintptr_t)&read;
    char buf[8192], py_path[PATH_MAX] = "", libc_path[PATH_MAX] = "";
    range_t py[2];
    int npy = 0, py_tail = 0;
    size_t have = 0;
    int n = 0;
    uintptr_t file_end = 0; /* end of the last file-backed mapping */
    for (;;) {
        ssize_t got = read(fd, buf + have, sizeof buf - 1 - have);
        if (got <= 0) break;
        have += (size_t)got;
        buf[have] = 0;
        char *line = buf, *nl;
        while ((nl = memchr(line, '\n', (size_t)(buf + have - line)))) {
            *nl = 0;
            uintptr_t lo, hi;
            unsigned long inode;
            char *perms, *path;
            if (parse_map_line(line, &lo, &hi, &perms, &inode, &path)) {
                int anon = inode == 0 && (!*path || !strcmp(path, "[heap]"));
                int rw = !strcmp(perms, "rw-p") && !contains_any(lo, hi, keep, nkeep);
                if (inode != 0 && libc_addr >= lo && libc_addr < hi)
                    snprintf(libc_path, sizeof libc_path, "%s", path);
                if (rw && inode != 0 && py_addr >= lo && py_addr < hi) {
                    snprintf(py_path, sizeof py_path, "%s", path);
                    py[npy++] = (range_t){lo, hi};
                    py_tail = 1;
                } else {
                    if (rw && anon && py_tail && lo == file_end && npy < 2)
                        py[npy++] = (range_t){lo, hi};
                    else if (rw && anon && hi - lo >= LEAN_MIN_BYTES && lo != file_end &&
                             n < LEAN_RANGES)
                        out[n++] = (range_t){lo, hi};
                    py_tail = 0;
                }
                if (inode != 0) file_end = hi;
            }
            line = nl + 1;
        }
        have = (size_t)(buf + have - line);
        memmove(buf, line, have);
        if (have == sizeof buf - 1) have = 0; /* a line longer than the buffer: skip it */
    }
    close(fd);
    if (*py_path && *libc_path && strcmp(py_path, libc_path))
        for (int i = 0; i < npy && n < LEAN_RANGES; i++) out[n++] = py[i];
    return n;
}

static void advise(const range_t *r, int n, int advice) {
    for (int i = 0; i < n; i++) madvise((void *)r[i].lo, r[i].hi - r[i].lo, advice);
}

/* fork() without Python's heap in the child (see above); its result as fork's. The child
 * starts with every signal blocked: a handler Python installed would touch memory the child
 * does not have, so it must not run there (the child resets or keeps them blocked). */
static pid_t lean_fork(uintptr_t keep_extra) {
    int here;
    uintptr_t keep[3] = {(uintptr_t)&here, (uintptr_t)&errno, keep_extra};
    range_t ranges[LEAN_RANGES];
    int n = heap_ranges(ranges, keep, keep_extra ? 3 : 2);
    if (verbose) {
        unsigned long kib = 0;
        for (int i = 0; i < n; i++) kib += (ranges[i].hi - ranges[i].lo) >> 10;
        fprintf(stderr, "sysspan ebpf: a child forked without %d mappings (%lu KiB)\n", n, kib);
    }
    advise(ranges, n, MADV_DONTFORK);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD, 0UL, 0UL, 0UL, 0UL);
    if (pid != 0) {
        int err = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        advise(ranges, n, MADV_DOFORK);
        errno = err;
    }
    return pid;
}

/* Closes every descriptor but the BPF ones (anon inodes: programs, maps, links, perf events)
 * and ``keep``. The open descriptors are listed from /proc/self/fd: trying every number up to
 * the limit took tens of thousands of readlink calls, on the CPU the traced program used. */
static void keep_bpf_fds_only(int keep) {
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return; /* then the child holds more than it needs, until this process ends */
    int fds[4096], nfds = 0;
    char buf[8192];
    for (;;) {
        ssize_t got = getdents64(dir, buf, sizeof buf);
        if (got <= 0) break;
        for (ssize_t off = 0; off < got;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            off += d->d_reclen;
            if (d->d_name[0] < '0' || d->d_name[0] > '9' || nfds == 4096) continue;
            fds[nfds++] = atoi(d->d_name);
        }
    }
    for (int i = 0; i < nfds; i++) {
        int fd = fds[i];
        if (fd == keep || fd == dir) continue;
        char path[64], target[32];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n < 0) continue;
        target[n] = 0;
        if (strncmp(target, "anon_inode:", 11) != 0) close(fd);
    }
    close(dir);
}

/* Leaves the tracepoints to a child process that outlives this one: detaching them waits for
 * RCU grace periods (tens of milliseconds per tracepoint on some machines, one after the
 * other), which sysspan's exit then does not wait for. The child keeps only the BPF file
 * descriptors and ends once this process is gone. */
static PyObject *Session_handoff(Session *s, PyObject *noargs) {
    int gone[2];
    if (pipe(gone) < 0) return fail("handing the probes off", errno);
    pid_t pid = lean_fork(0);
    if (pid < 0) {
        close(gone[0]);
        close(gone[1]);
        return fail("handing the probes off", errno);
    }
    if (pid == 0) {
        /* async-signal-safe calls only: the parent has other threads. Signals stay blocked
         * (lean_fork): this holder ends when sysspan is gone, and Ctrl-C is for sysspan. */
        keep_bpf_fds_only(gone[0]);
        char c;
        while (read(gone[0], &c, 1) < 0 && errno == EINTR) {
        }
        _exit(0);
    }
    close(gone[0]);
    s->handed_off = 1;
    /* gone[1] stays open until this process exits (close-on-exec for what it runs) */
    fcntl(gone[1], F_SETFD, FD_CLOEXEC);
    Py_RETURN_NONE;
}

static PyObject *Session_close(Session *s, PyObject *noargs) {
    session_close(s);
    Py_RETURN_NONE;
}

static void Session_dealloc(Session *s) {
    session_close(s);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyMethodDef Session_methods[] = {
    {"update", (PyCFunction)Session_update, METH_VARARGS, "update(map, key, value): set one map entry"},
    {"attach", (PyCFunction)Session_attach, METH_VARARGS,
     "attach(program, category, tracepoint): attach a program to a tracepoint"},
    {"attach_fentry", (PyCFunction)Session_attach_fentry, METH_VARARGS,
     "attach_fentry(slot): attach the slot's fentry and fexit programs to their function"},
    {"drain", (PyCFunction)Session_drain, METH_VARARGS,
     "drain(timeout_ms) -> bytes: the records ready in the ring buffer"},
    {"wait_for_wakeups", (PyCFunction)Session_wait_for_wakeups, METH_NOARGS,
     "wait_for_wakeups(): drain() sleeps until the programs wake it (cfg.wake_at) or it times out"},
    {"interrupt", (PyCFunction)Session_interrupt, METH_NOARGS,
     "interrupt(): a drain() waiting for records returns now"},
    {"percpu_sum", (PyCFunction)Session_percpu_sum, METH_VARARGS,
     "percpu_sum(map, key) -> int: a per-CPU counter summed over CPUs"},
    {"detach", (PyCFunction)Session_detach, METH_NOARGS, "detach every program"},
    {"handoff", (PyCFunction)Session_handoff, METH_NOARGS,
     "leave detaching the probes to a child process that outlives this one"},
    {"close", (PyCFunction)Session_close, METH_NOARGS, "detach and unload everything"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject SessionType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sysspan.collector.ebpf._bpf.Session",
    .tp_basicsize = sizeof(Session),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Session(ring_bytes, fentry=()): sysspan's eBPF programs loaded (fentry_<i> and "
              "fexit_<i> for the kernel function fentry[i]), not yet attached",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Session_init,
    .tp_dealloc = (destructor)Session_dealloc,
    .tp_methods = Session_methods,
};

/* Copies the byte strings of ``seq`` into ``*pos`` and their addresses into ``ptrs`` (NULL
 * after the last). */
static void put_strings(PyObject *seq, char **ptrs, char **pos) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        size_t len = (size_t)PyBytes_GET_SIZE(item);
        memcpy(*pos, PyBytes_AS_STRING(item), len + 1);
        ptrs[i] = *pos;
        *pos += len + 1;
    }
    ptrs[n] = NULL;
}

static Py_ssize_t strings_size(PyObject *seq) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), size = (n + 1) * (Py_ssize_t)sizeof(char *);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyBytes_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "spawn_paused() takes bytes");
            return -1;
        }
        if ((Py_ssize_t)strlen(PyBytes_AS_STRING(item)) != PyBytes_GET_SIZE(item)) {
            PyErr_SetString(PyExc_ValueError, "embedded null byte");
            return -1;
        }
        size += PyBytes_GET_SIZE(item) + 1;
    }
    return size;
}

/* The command's process, forked without Python's heap (lean_fork): it sets the given signals
 * to their defaults, unblocks every signal, closes go_w, and execs path once it reads "g" from
 * go_r (it exits with 127 on anything else, or when the exec fails, saying why on stderr). */
static PyObject *spawn_paused(PyObject *mod, PyObject *args) {
    PyObject *path, *argv_in, *env_in, *sigs_in;
    int go_r, go_w;
    if (!PyArg_ParseTuple(args, "SOOiiO", &path, &argv_in, &env_in, &go_r, &go_w, &sigs_in))
        return NULL;
    PyObject *argv = PySequence_Fast(argv_in, "argv must be a sequence");
    PyObject *env = argv ? PySequence_Fast(env_in, "env must be a sequence") : NULL;
    PyObject *sigs = env ? PySequence_Fast(sigs_in, "signals must be a sequence") : NULL;
    PyObject *result = NULL;
    void *block = MAP_FAILED;
    Py_ssize_t size = 0;
    if (!sigs) goto out;
    int nsig = (int)PySequence_Fast_GET_SIZE(sigs), sig_list[64];
    if (nsig > 64) nsig = 64;
    for (int i = 0; i < nsig; i++) {
        sig_list[i] = (int)PyLong_AsLong(PySequence_Fast_GET_ITEM(sigs, i));
        if (PyErr_Occurred()) goto out;
    }
    Py_ssize_t a = strings_size(argv), e = a < 0 ? -1 : strings_size(env);
    if (a < 0 || e < 0) goto out;
    if (PySequence_Fast_GET_SIZE(argv) == 0) {
        PyErr_SetString(PyExc_ValueError, "argv is empty");
        goto out;
    }
    /* the child's copy of what it execs: a mapping of its own, kept in the child */
    size = a + e + PyBytes_GET_SIZE(path) + 1;
    block = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (block == MAP_FAILED) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto out;
    }
    char **cargv = block;
    char **cenv = cargv + PySequence_Fast_GET_SIZE(argv) + 1;
    char *pos = (char *)(cenv + PySequence_Fast_GET_SIZE(env) + 1);
    put_strings(argv, cargv, &pos);
    put_strings(env, cenv, &pos);
    char *cpath = pos;
    memcpy(cpath, PyBytes_AS_STRING(path), (size_t)PyBytes_GET_SIZE(path) + 1);
    const char *debug = getenv("SYSSPAN_EBPF_DEBUG");
    verbose = debug && *debug;
    pid_t pid = lean_fork((uintptr_t)block);
    if (pid == 0) {
        /* async-signal-safe calls only: the parent has other threads */
        close(go_w);
        struct sigaction dfl, cur;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        /* every handler sysspan installed goes before any signal is let in (exec would reset
         * them anyway, and they could not run here); then the ones sysspan ignores */
        for (int sig = 1; sig < _NSIG; sig++)
            if (sigaction(sig, NULL, &cur) == 0 &&
                ((cur.sa_flags & SA_SIGINFO) ||
                 (cur.sa_handler != SIG_DFL && cur.sa_handler != SIG_IGN)))
                sigaction(sig, &dfl, NULL);
        for (int i = 0; i < nsig; i++) sigaction(sig_list[i], &dfl, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        char c = 0;
        ssize_t got;
        while ((got = read(go_r, &c, 1)) < 0 && errno == EINTR) {
        }
        if (got != 1 || c != 'g') _exit(127);
        execve(cpath, cargv, cenv);
        int err = errno;
        char msg[512];
        /* strerror may translate (locks, malloc); the untranslated text needs neither */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 32)
        const char *why = strerrordesc_np(err);
#else
        const char *why = NULL;
#endif
        int len = why ? snprintf(msg, sizeof msg, "sysspan: %.200s: %s\n", cargv[0], why)
                      : snprintf(msg, sizeof msg, "sysspan: %.200s: exec failed (errno %d)\n",
                                 cargv[0], err);
        if (len > 0) (void)!write(2, msg, (size_t)len < sizeof msg ? (size_t)len : sizeof msg - 1);
        _exit(127);
    }
    if (pid < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto out;
    }
    result = PyLong_FromLong(pid);
out:
    if (block != MAP_FAILED) munmap(block, (size_t)size);
    Py_XDECREF(sigs);
    Py_XDECREF(env);
    Py_XDECREF(argv);
    return result;
}

/* Whether this kernel loads BPF tracing programs (fentry/fexit): some refuse them outright
 * (locked down, or a BPF LSM policy), and finding that out costs a tiny load here rather than a
 * failed load of the whole object. */
static PyObject *fentry_supported(PyObject *mod, PyObject *noargs) {
    int ok = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_TRACING, NULL);
    return PyBool_FromLong(ok == 1);
}

/* Which of the names are functions in the kernel's BTF (a fentry program needs its target's). */
static PyObject *btf_functions(PyObject *mod, PyObject *names) {
    PyObject *seq = PySequence_Fast(names, "btf_functions() takes a sequence of names");
    if (!seq) return NULL;
    struct btf *btf;
    Py_BEGIN_ALLOW_THREADS
    btf = btf__load_vmlinux_btf();
    Py_END_ALLOW_THREADS
    if (!btf) {
        Py_DECREF(seq);
        return fail("reading the kernel's BTF", errno);
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyList_New(n);
    for (Py_ssize_t i = 0; out && i < n; i++) {
        const char *name = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
        if (!name) {
            Py_CLEAR(out);
            break;
        }
        PyObject *found = PyBool_FromLong(btf__find_by_name_kind(btf, name, BTF_KIND_FUNC) > 0);
        PyList_SET_ITEM(out, i, found);
    }
    btf__free(btf);
    Py_DECREF(seq);
    return out;
}

static PyMethodDef module_methods[] = {
    RECORDS_METHODS,
    {"btf_functions", btf_functions, METH_O,
     "btf_functions(names) -> list[bool]: which names are functions in the kernel's BTF"},
    {"spawn_paused", spawn_paused, METH_VARARGS,
     "spawn_paused(path, argv, env, go_r, go_w, signals) -> pid: a child that execs path "
     "(bytes; argv and env lists of bytes) once it reads b'g' from go_r"},
    {"fentry_supported", fentry_supported, METH_NOARGS,
     "fentry_supported() -> bool: whether the kernel loads BPF tracing (fentry) programs"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_bpf", "sysspan's eBPF programs, loaded through libbpf", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__bpf(void) {
    if (PyType_Ready(&SessionType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&SessionType);
    if (PyModule_AddObject(m, "Session", (PyObject *)&SessionType) < 0) return NULL;
    return m;
}
