/*
 * imagestore.accel._native -- the byte loops Python cannot do fast.
 *
 * Every function has a pure-Python twin in imagestore/accel/pure.py with the same signature,
 * the same results and the same exceptions for bad arguments; tests/test_accel.py holds them
 * to that.  Buffers are taken with PyBUF_SIMPLE; the GIL is released around every loop that
 * touches bytes or does I/O; every length and offset is checked before any work starts:
 * a negative one raises ValueError, one that does not fit in a signed 64-bit file offset
 * (or whose offset + length does not) raises OverflowError.
 *
 *   is_zero(buf) -> bool
 *   nonzero_runs(buf, block=4096) -> [(start, end), ...]
 *   coalesce(extents) -> [(offset, length), ...]
 *   copy_extents(src_fd, dst_fd, plan, threads=1) -> int
 *   reflink_range(src_fd, src_off, dst_fd, dst_off, length) -> bool
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/ioctl.h>
#include <sys/syscall.h>
#endif

/* Release the GIL only when the work is worth more than the hand-over. */
#define GIL_THRESHOLD (16 * 1024)
/* Largest single copy_file_range / pread / pwrite request. */
#define MAX_IO_CALL ((int64_t)1 << 30)
/* Bounce buffer of the pread/pwrite fallback, per worker. */
#define BOUNCE_SIZE ((size_t)1 << 20)
/* Work unit handed to one worker thread when the plan is split. */
#define PIECE_SIZE ((int64_t)8 << 20)
#define MAX_THREADS 1024

/* ------------------------------------------------------------------------------------ */
/* argument helpers                                                                     */

/* obj -> int64 via __index__; OverflowError outside int64, ValueError when negative. */
static int
get_nonneg_i64(PyObject *obj, const char *name, int64_t *out)
{
    PyObject *idx = PyNumber_Index(obj);
    if (idx == NULL)
        return -1;
    long long v = PyLong_AsLongLong(idx);
    Py_DECREF(idx);
    if (v == -1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_OverflowError, "%s does not fit in a 64-bit file offset", name);
        }
        return -1;
    }
    if (v < 0) {
        PyErr_Format(PyExc_ValueError, "%s must not be negative (got %lld)", name, v);
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

/* offset + length must stay a valid file offset. */
static int
check_end(int64_t off, int64_t len, const char *name)
{
    if (len > INT64_MAX - off) {
        PyErr_Format(PyExc_OverflowError, "%s: offset + length does not fit in a 64-bit file offset",
                     name);
        return -1;
    }
    return 0;
}

static int
get_fd(PyObject *obj, const char *name, int *out)
{
    int64_t v;
    if (get_nonneg_i64(obj, name, &v) < 0)
        return -1;
    if (v > INT_MAX) {
        PyErr_Format(PyExc_OverflowError, "%s is not a valid file descriptor", name);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* zero scan                                                                            */

static inline uint64_t
load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v); /* unaligned-safe; compiles to a plain load */
    return v;
}

/* OR-accumulate 256 bytes at a time: gcc -O3 turns the inner loop into vector ORs, and the
 * early exit per 256 bytes keeps the scan of non-zero data short.  ~25 GB/s out of memory,
 * ~60 GB/s out of cache, on one core of the reference machine. */
static int
region_is_zero(const unsigned char *p, size_t n)
{
    while (n >= 256) {
        uint64_t acc = 0;
        for (int i = 0; i < 32; i++)
            acc |= load64(p + 8 * i);
        if (acc)
            return 0;
        p += 256;
        n -= 256;
    }
    uint64_t acc = 0;
    while (n >= 8) {
        acc |= load64(p);
        p += 8;
        n -= 8;
    }
    while (n) {
        acc |= *p++;
        n--;
    }
    return acc == 0;
}

PyDoc_STRVAR(is_zero_doc,
             "is_zero($module, buf, /)\n--\n\nTrue when every byte of the buffer is zero (True for an empty one).");

static PyObject *
native_is_zero(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    int z;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (view.len >= GIL_THRESHOLD) {
        Py_BEGIN_ALLOW_THREADS
        z = region_is_zero((const unsigned char *)view.buf, (size_t)view.len);
        Py_END_ALLOW_THREADS
    } else {
        z = region_is_zero((const unsigned char *)view.buf, (size_t)view.len);
    }
    PyBuffer_Release(&view);
    return PyBool_FromLong(z);
}

/* ------------------------------------------------------------------------------------ */
/* nonzero_runs                                                                         */

typedef struct {
    Py_ssize_t *v; /* start, end pairs */
    size_t n;      /* pairs used */
    size_t cap;    /* pairs allocated */
} runvec;

static int
runvec_push(runvec *r, Py_ssize_t s, Py_ssize_t e)
{
    if (r->n && r->v[2 * r->n - 1] == s) { /* adjacent: extend the last run */
        r->v[2 * r->n - 1] = e;
        return 0;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        Py_ssize_t *nv = realloc(r->v, cap * 2 * sizeof(Py_ssize_t));
        if (nv == NULL)
            return -1;
        r->v = nv;
        r->cap = cap;
    }
    r->v[2 * r->n] = s;
    r->v[2 * r->n + 1] = e;
    r->n++;
    return 0;
}

static int
scan_runs(const unsigned char *p, Py_ssize_t n, Py_ssize_t block, runvec *r)
{
    for (Py_ssize_t off = 0; off < n; off += block) {
        Py_ssize_t len = n - off < block ? n - off : block;
        if (!region_is_zero(p + off, (size_t)len) && runvec_push(r, off, off + len) < 0)
            return -1;
        if (len < block)
            break;
    }
    return 0;
}

PyDoc_STRVAR(nonzero_runs_doc,
             "nonzero_runs($module, /, buf, block=4096)\n--\n\n"
             "[(start, end)] byte ranges covering every block of ``block`` bytes that holds a\n"
             "non-zero byte (the last block may be short), adjacent ranges merged.");

static PyObject *
native_nonzero_runs(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"buf", "block", NULL};
    PyObject *bufobj, *blockobj = NULL;
    Py_buffer view;
    int64_t block = 4096;
    runvec r = {NULL, 0, 0};
    int rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:nonzero_runs", kwlist, &bufobj, &blockobj))
        return NULL;
    if (PyObject_GetBuffer(bufobj, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (blockobj != NULL && get_nonneg_i64(blockobj, "block", &block) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    if (block == 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "block must be positive");
        return NULL;
    }
    if (block > PY_SSIZE_T_MAX)
        block = PY_SSIZE_T_MAX;
    if (view.len >= GIL_THRESHOLD) {
        Py_BEGIN_ALLOW_THREADS
        rc = scan_runs((const unsigned char *)view.buf, view.len, (Py_ssize_t)block, &r);
        Py_END_ALLOW_THREADS
    } else {
        rc = scan_runs((const unsigned char *)view.buf, view.len, (Py_ssize_t)block, &r);
    }
    PyBuffer_Release(&view);
    if (rc < 0) {
        free(r.v);
        return PyErr_NoMemory();
    }
    PyObject *out = PyList_New((Py_ssize_t)r.n);
    if (out == NULL)
        goto fail;
    for (size_t i = 0; i < r.n; i++) {
        PyObject *t = Py_BuildValue("(nn)", r.v[2 * i], r.v[2 * i + 1]);
        if (t == NULL)
            goto fail;
        PyList_SET_ITEM(out, (Py_ssize_t)i, t);
    }
    free(r.v);
    return out;
fail:
    free(r.v);
    Py_XDECREF(out);
    return NULL;
}

/* ------------------------------------------------------------------------------------ */
/* coalesce                                                                             */

typedef struct {
    int64_t off;
    int64_t len;
} extent;

static int
cmp_extent(const void *a, const void *b)
{
    const extent *x = a, *y = b;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return 0;
}

/* Unpack one plan item: a sequence of exactly `k` integers. */
static int
get_tuple(PyObject *item, Py_ssize_t k, const char *what, const char **names, int64_t *out)
{
    if (!PySequence_Check(item) || PyUnicode_Check(item) || PyBytes_Check(item) ||
        PyByteArray_Check(item)) {
        PyErr_Format(PyExc_TypeError, "%s item must be a tuple of %zd integers, not %.100s", what,
                     k, Py_TYPE(item)->tp_name);
        return -1;
    }
    Py_ssize_t n = PySequence_Size(item);
    if (n < 0)
        return -1;
    if (n != k) {
        PyErr_Format(PyExc_TypeError, "%s item must be a tuple of %zd integers, got %zd items",
                     what, k, n);
        return -1;
    }
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *v = PySequence_GetItem(item, i);
        if (v == NULL)
            return -1;
        int rc = get_nonneg_i64(v, names[i], &out[i]);
        Py_DECREF(v);
        if (rc < 0)
            return -1;
    }
    return 0;
}

PyDoc_STRVAR(coalesce_doc,
             "coalesce($module, extents, /)\n--\n\n"
             "Merge (offset, length) extents, in any order, into sorted, non-overlapping extents;\n"
             "overlapping and touching extents merge, zero-length ones are dropped.");

static PyObject *
native_coalesce(PyObject *self, PyObject *arg)
{
    static const char *names[] = {"offset", "length"};
    PyObject *seq = PySequence_Fast(arg, "coalesce() argument must be an iterable of (offset, length)");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    extent *ex = PyMem_RawMalloc((size_t)(n ? n : 1) * sizeof(extent));
    if (ex == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    Py_ssize_t m = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t v[2];
        if (get_tuple(PySequence_Fast_GET_ITEM(seq, i), 2, "coalesce", names, v) < 0 ||
            check_end(v[0], v[1], "coalesce") < 0) {
            PyMem_RawFree(ex);
            Py_DECREF(seq);
            return NULL;
        }
        if (v[1] > 0) {
            ex[m].off = v[0];
            ex[m].len = v[1];
            m++;
        }
    }
    Py_DECREF(seq);

    Py_ssize_t k = 0;
    Py_BEGIN_ALLOW_THREADS
    qsort(ex, (size_t)m, sizeof(extent), cmp_extent);
    for (Py_ssize_t i = 0; i < m; i++) {
        if (k && ex[i].off <= ex[k - 1].off + ex[k - 1].len) {
            int64_t end = ex[i].off + ex[i].len;
            if (end > ex[k - 1].off + ex[k - 1].len)
                ex[k - 1].len = end - ex[k - 1].off;
        } else {
            ex[k++] = ex[i];
        }
    }
    Py_END_ALLOW_THREADS

    PyObject *out = PyList_New(k);
    if (out == NULL) {
        PyMem_RawFree(ex);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *t = Py_BuildValue("(LL)", (long long)ex[i].off, (long long)ex[i].len);
        if (t == NULL) {
            PyMem_RawFree(ex);
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, t);
    }
    PyMem_RawFree(ex);
    return out;
}

/* ------------------------------------------------------------------------------------ */
/* copy_extents                                                                         */

typedef struct {
    int64_t src;
    int64_t dst;
    int64_t len;
} copy_item;

typedef struct {
    int src_fd, dst_fd;
    const copy_item *plan;
    Py_ssize_t n;
    int split; /* hand out PIECE_SIZE pieces (several workers) or whole extents */
    pthread_mutex_t lock;
    Py_ssize_t next_i;  /* cursor: extent */
    int64_t next_off;   /* cursor: offset inside it */
    int err;            /* first errno seen; workers stop when set */
    int64_t copied;
    int use_cfr;        /* copy_file_range still worth trying */
} copy_job;

/* Take the next piece of work; 0 when none is left or an error stopped the job. */
static int
take_piece(copy_job *j, int64_t *src, int64_t *dst, int64_t *len)
{
    int ok = 0;
    pthread_mutex_lock(&j->lock);
    while (!j->err && j->next_i < j->n) {
        const copy_item *it = &j->plan[j->next_i];
        int64_t rest = it->len - j->next_off;
        if (rest <= 0) {
            j->next_i++;
            j->next_off = 0;
            continue;
        }
        int64_t take = (j->split && rest > PIECE_SIZE) ? PIECE_SIZE : rest;
        *src = it->src + j->next_off;
        *dst = it->dst + j->next_off;
        *len = take;
        j->next_off += take;
        ok = 1;
        break;
    }
    pthread_mutex_unlock(&j->lock);
    return ok;
}

static int
retry_without_cfr(int e)
{
    return e == EXDEV || e == EINVAL || e == ENOSYS || e == EOPNOTSUPP
#if defined(ENOTSUP) && ENOTSUP != EOPNOTSUPP
           || e == ENOTSUP
#endif
        ;
}

/* Copy one piece.  Returns bytes copied (< len at end of the source file) or -errno. */
static int64_t
copy_piece(copy_job *j, int64_t src, int64_t dst, int64_t len, unsigned char **bounce)
{
    int64_t done = 0;
#if defined(__linux__) && defined(SYS_copy_file_range)
    while (done < len && __atomic_load_n(&j->use_cfr, __ATOMIC_RELAXED)) {
        loff_t so = (loff_t)(src + done), dof = (loff_t)(dst + done);
        int64_t want = len - done < MAX_IO_CALL ? len - done : MAX_IO_CALL;
        ssize_t r = (ssize_t)syscall(SYS_copy_file_range, j->src_fd, &so, j->dst_fd, &dof,
                                     (size_t)want, 0u);
        if (r > 0) {
            done += r;
            continue;
        }
        if (r == 0)
            return done; /* end of the source file */
        if (errno == EINTR)
            continue;
        if (retry_without_cfr(errno)) {
            __atomic_store_n(&j->use_cfr, 0, __ATOMIC_RELAXED);
            break;
        }
        return -(int64_t)errno;
    }
#endif
    while (done < len) {
        if (*bounce == NULL) {
            *bounce = malloc(BOUNCE_SIZE);
            if (*bounce == NULL)
                return -(int64_t)ENOMEM;
        }
        size_t want = (size_t)(len - done < (int64_t)BOUNCE_SIZE ? len - done : (int64_t)BOUNCE_SIZE);
        ssize_t r = pread(j->src_fd, *bounce, want, (off_t)(src + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -(int64_t)errno;
        }
        if (r == 0)
            return done; /* end of the source file */
        ssize_t w = 0;
        while (w < r) {
            ssize_t k = pwrite(j->dst_fd, *bounce + w, (size_t)(r - w), (off_t)(dst + done + w));
            if (k < 0) {
                if (errno == EINTR)
                    continue;
                return -(int64_t)errno;
            }
            if (k == 0)
                return -(int64_t)EIO;
            w += k;
        }
        done += r;
    }
    return done;
}

static void *
copy_worker(void *arg)
{
    copy_job *j = arg;
    unsigned char *bounce = NULL;
    int64_t src, dst, len, mine = 0;
    while (take_piece(j, &src, &dst, &len)) {
        int64_t r = copy_piece(j, src, dst, len, &bounce);
        if (r < 0) {
            pthread_mutex_lock(&j->lock);
            if (!j->err)
                j->err = (int)-r;
            pthread_mutex_unlock(&j->lock);
            break;
        }
        mine += r;
    }
    free(bounce);
    pthread_mutex_lock(&j->lock);
    j->copied += mine;
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

PyDoc_STRVAR(copy_extents_doc,
             "copy_extents($module, /, src_fd, dst_fd, plan, threads=1)\n--\n\n"
             "Copy every (src_offset, dst_offset, length) extent of ``plan`` from ``src_fd`` to\n"
             "``dst_fd`` with copy_file_range (pread/pwrite when the kernel or filesystem can't),\n"
             "in ``threads`` worker threads without the GIL.  Returns the bytes copied: less than\n"
             "the plan's total only when an extent runs past the end of the source file.\n"
             "Errors raise OSError with the errno of the first failure.");

static PyObject *
native_copy_extents(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"src_fd", "dst_fd", "plan", "threads", NULL};
    static const char *names[] = {"src_offset", "dst_offset", "length"};
    PyObject *srcobj, *dstobj, *planobj, *throbj = NULL;
    copy_job j;
    int64_t threads = 1;

    memset(&j, 0, sizeof j);
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|O:copy_extents", kwlist, &srcobj, &dstobj,
                                     &planobj, &throbj))
        return NULL;
    if (get_fd(srcobj, "src_fd", &j.src_fd) < 0 || get_fd(dstobj, "dst_fd", &j.dst_fd) < 0)
        return NULL;
    PyObject *seq = PySequence_Fast(planobj, "copy_extents() plan must be an iterable of "
                                             "(src_offset, dst_offset, length)");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    copy_item *plan = PyMem_RawMalloc((size_t)(n ? n : 1) * sizeof(copy_item));
    if (plan == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t v[3];
        if (get_tuple(PySequence_Fast_GET_ITEM(seq, i), 3, "copy_extents plan", names, v) < 0 ||
            check_end(v[0], v[2], "copy_extents source") < 0 ||
            check_end(v[1], v[2], "copy_extents destination") < 0) {
            PyMem_RawFree(plan);
            Py_DECREF(seq);
            return NULL;
        }
        plan[i].src = v[0];
        plan[i].dst = v[1];
        plan[i].len = v[2];
    }
    Py_DECREF(seq);
    if (throbj != NULL) {
        if (get_nonneg_i64(throbj, "threads", &threads) < 0) {
            PyMem_RawFree(plan);
            return NULL;
        }
        if (threads < 1 || threads > MAX_THREADS) {
            PyMem_RawFree(plan);
            PyErr_Format(PyExc_ValueError, "threads must be between 1 and %d", MAX_THREADS);
            return NULL;
        }
    }

    j.plan = plan;
    j.n = n;
    j.split = threads > 1;
    j.use_cfr = 1;
    pthread_mutex_init(&j.lock, NULL);

    Py_BEGIN_ALLOW_THREADS
    pthread_t tids[MAX_THREADS];
    int started = 0;
    for (int64_t t = 1; t < threads; t++) {
        if (pthread_create(&tids[started], NULL, copy_worker, &j) != 0)
            break; /* fewer workers: the rest of the plan is still covered */
        started++;
    }
    copy_worker(&j); /* the calling thread works too */
    for (int t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    Py_END_ALLOW_THREADS

    pthread_mutex_destroy(&j.lock);
    PyMem_RawFree(plan);
    if (j.err) {
        errno = j.err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLongLong((long long)j.copied);
}

/* ------------------------------------------------------------------------------------ */
/* reflink_range                                                                        */

/* struct file_clone_range of <linux/fs.h>, declared here so old headers do not matter. */
struct imagestore_clone_range {
    int64_t src_fd;
    uint64_t src_offset;
    uint64_t src_length;
    uint64_t dest_offset;
};
#define IMAGESTORE_FICLONERANGE 0x4020940DUL /* _IOW(0x94, 13, struct file_clone_range) */

PyDoc_STRVAR(reflink_range_doc,
             "reflink_range($module, /, src_fd, src_off, dst_fd, dst_off, length)\n--\n\n"
             "Share ``length`` bytes of ``src_fd`` at ``src_off`` into ``dst_fd`` at ``dst_off``\n"
             "(FICLONERANGE).  False when the filesystem can't (EOPNOTSUPP, EXDEV, EINVAL -- e.g.\n"
             "unaligned offsets -- or ENOTTY); OSError for any other error.  ``length`` must be\n"
             "positive (the kernel reads 0 as 'to the end of the source').");

static PyObject *
native_reflink_range(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"src_fd", "src_off", "dst_fd", "dst_off", "length", NULL};
    PyObject *o[5];
    int src_fd, dst_fd;
    int64_t src_off, dst_off, length;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOO:reflink_range", kwlist, &o[0], &o[1],
                                     &o[2], &o[3], &o[4]))
        return NULL;
    if (get_fd(o[0], "src_fd", &src_fd) < 0 || get_nonneg_i64(o[1], "src_off", &src_off) < 0 ||
        get_fd(o[2], "dst_fd", &dst_fd) < 0 || get_nonneg_i64(o[3], "dst_off", &dst_off) < 0 ||
        get_nonneg_i64(o[4], "length", &length) < 0)
        return NULL;
    if (length == 0) {
        PyErr_SetString(PyExc_ValueError, "length must be positive");
        return NULL;
    }
    if (check_end(src_off, length, "reflink_range source") < 0 ||
        check_end(dst_off, length, "reflink_range destination") < 0)
        return NULL;
#ifdef __linux__
    struct imagestore_clone_range fcr = {src_fd, (uint64_t)src_off, (uint64_t)length,
                                         (uint64_t)dst_off};
    int r, e = 0;
    Py_BEGIN_ALLOW_THREADS
    do {
        r = ioctl(dst_fd, IMAGESTORE_FICLONERANGE, &fcr);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        e = errno;
    Py_END_ALLOW_THREADS
    if (r == 0)
        Py_RETURN_TRUE;
    if (e == EOPNOTSUPP || e == EXDEV || e == EINVAL || e == ENOTTY
#if defined(ENOTSUP) && ENOTSUP != EOPNOTSUPP
        || e == ENOTSUP
#endif
    )
        Py_RETURN_FALSE;
    errno = e;
    return PyErr_SetFromErrno(PyExc_OSError);
#else
    Py_RETURN_FALSE;
#endif
}

/* ------------------------------------------------------------------------------------ */
/* module                                                                               */

static PyMethodDef native_methods[] = {
    {"is_zero", (PyCFunction)native_is_zero, METH_O, is_zero_doc},
    {"nonzero_runs", (PyCFunction)(void (*)(void))native_nonzero_runs,
     METH_VARARGS | METH_KEYWORDS, nonzero_runs_doc},
    {"coalesce", (PyCFunction)native_coalesce, METH_O, coalesce_doc},
    {"copy_extents", (PyCFunction)(void (*)(void))native_copy_extents,
     METH_VARARGS | METH_KEYWORDS, copy_extents_doc},
    {"reflink_range", (PyCFunction)(void (*)(void))native_reflink_range,
     METH_VARARGS | METH_KEYWORDS, reflink_range_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot native_slots[] = {
    {0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "imagestore.accel._native",
    .m_doc = "Native twin of imagestore.accel.pure: zero scan, extent merge, extent copy, reflink.",
    .m_size = 0,
    .m_methods = native_methods,
    .m_slots = native_slots,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    return PyModuleDef_Init(&native_module);
}
