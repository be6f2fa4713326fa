/* ddq_edge._runtime: the C runtime as a Python type. No per-op logic lives in Python: one call
 * runs the whole graph with the GIL released. Arrays travel through the buffer protocol (no
 * NumPy headers needed at build time); ddq_edge/runtime.py wraps this in the public
 * ddq_edge.Runtime. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "ddq/ddq.h"

static PyObject *LoadError; /* _runtime.LoadError(message, status) */

typedef struct {
    PyObject_HEAD
    ddq_model *model;
    ddq_session *session;
    int busy; /* a session runs one inference at a time */
} RuntimeObject;

static PyObject *raise_error(const ddq_error *error) {
    PyObject *args = Py_BuildValue("(si)", error->message, (int)error->status);
    if (args) {
        PyErr_SetObject(LoadError, args);
        Py_DECREF(args);
    }
    return NULL;
}

static void Runtime_dealloc(RuntimeObject *self) {
    ddq_session_free(self->session);
    ddq_model_free(self->model);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Runtime_init(RuntimeObject *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"path", "threads", "kernels", NULL};
    PyObject *path_obj = NULL;
    int threads = 1;
    const char *kernels = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&|iz", keywords, PyUnicode_FSConverter, &path_obj, &threads,
                                     &kernels))
        return -1;
    if (self->model) {
        PyErr_SetString(PyExc_RuntimeError, "Runtime is already initialised");
        Py_DECREF(path_obj);
        return -1;
    }
    ddq_error error = {0};
    ddq_status st;
    const char *path = PyBytes_AS_STRING(path_obj);
    ddq_session_options options = ddq_session_default_options();
    options.threads = threads;
    options.kernels = kernels;
    Py_BEGIN_ALLOW_THREADS
    st = ddq_model_load_file(path, &self->model, &error);
    if (!st) st = ddq_session_create(self->model, &options, &self->session, &error);
    Py_END_ALLOW_THREADS
    Py_DECREF(path_obj);
    if (st) {
        raise_error(&error);
        return -1;
    }
    return 0;
}

static int check_ready(RuntimeObject *self) {
    if (!self->session) {
        PyErr_SetString(PyExc_RuntimeError, "Runtime is not initialised");
        return -1;
    }
    return 0;
}

/* run_into(input, batch, output): input and output are writable/readable C-contiguous float32
 * buffers of batch × input_elements and batch × output_elements values. */
static PyObject *Runtime_run_into(RuntimeObject *self, PyObject *args) {
    PyObject *in_obj, *out_obj;
    Py_ssize_t batch;
    if (!PyArg_ParseTuple(args, "OnO", &in_obj, &batch, &out_obj) || check_ready(self)) return NULL;
    ddq_model_info info;
    ddq_model_get_info(self->model, &info);
    Py_buffer in, out;
    if (PyObject_GetBuffer(in_obj, &in, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    if (PyObject_GetBuffer(out_obj, &out, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&in);
        return NULL;
    }
    PyObject *result = NULL;
    const char *fin = in.format ? in.format : "B", *fout = out.format ? out.format : "B";
    if (batch < 1 || in.itemsize != 4 || out.itemsize != 4 || (strcmp(fin, "f") && strcmp(fin, "<f")) ||
        (strcmp(fout, "f") && strcmp(fout, "<f")) || in.len != (Py_ssize_t)(4 * batch * info.input.elements) ||
        out.len != (Py_ssize_t)(4 * batch * info.output.elements)) {
        PyErr_Format(PyExc_ValueError, "run_into: expected float32 buffers of %lld and %lld values for batch %zd",
                     (long long)(batch * info.input.elements), (long long)(batch * info.output.elements), batch);
        goto done;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "this Runtime is already running in another thread; use one per thread");
        goto done;
    }
    self->busy = 1;
    ddq_error error = {0};
    ddq_status st;
    Py_BEGIN_ALLOW_THREADS
    st = ddq_session_run(self->session, in.buf, batch, out.buf, &error);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (st) {
        raise_error(&error);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&in);
    PyBuffer_Release(&out);
    return result;
}

static PyObject *shape_tuple(const ddq_tensor_info *t) {
    PyObject *tuple = PyTuple_New(t->ndim);
    for (int d = 0; tuple && d < t->ndim; d++) PyTuple_SET_ITEM(tuple, d, PyLong_FromLongLong(t->shape[d]));
    return tuple;
}

/* info() -> dict: shapes, names, sizes, metadata text, arena, kernels, ops. */
static PyObject *Runtime_info(RuntimeObject *self, PyObject *unused) {
    if (check_ready(self)) return NULL;
    ddq_model_info info;
    ddq_model_get_info(self->model, &info);
    PyObject *ops = PyList_New(info.op_count);
    for (int i = 0; ops && i < info.op_count; i++)
        PyList_SET_ITEM(ops, i, Py_BuildValue("(ss)", ddq_model_op_name(self->model, i), ddq_model_op_kind(self->model, i)));
    if (!ops) return NULL;
    return Py_BuildValue(
        "{s:(ii),s:s,s:N,s:s,s:N,s:s#,s:n,s:n,s:n,s:n,s:s,s:i,s:s,s:N}", "version", info.version_major,
        info.version_minor, "input_name", info.input.name, "input_shape", shape_tuple(&info.input), "output_name",
        info.output.name, "output_shape", shape_tuple(&info.output), "metadata_json", info.metadata_json,
        (Py_ssize_t)info.metadata_length, "file_bytes", (Py_ssize_t)info.file_bytes, "constant_bytes",
        (Py_ssize_t)info.weight_bytes, "arena_bytes", (Py_ssize_t)ddq_session_arena_bytes(self->session),
        "liveness_bound", (Py_ssize_t)ddq_session_liveness_bound(self->session), "kernels",
        ddq_session_kernels(self->session), "threads", ddq_session_threads(self->session), "cpu_features",
        ddq_cpu_features(), "ops", ops);
}

/* op_nanoseconds() -> list of int: each op's time in the last run. */
static PyObject *Runtime_op_nanoseconds(RuntimeObject *self, PyObject *unused) {
    if (check_ready(self)) return NULL;
    int n = ddq_session_op_count(self->session);
    const uint64_t *ns = ddq_session_op_nanoseconds(self->session);
    PyObject *list = PyList_New(n);
    for (int i = 0; list && i < n; i++) PyList_SET_ITEM(list, i, PyLong_FromUnsignedLongLong(ns[i]));
    return list;
}

/* memory_plan() -> list of (tensor index, offset, bytes, first op, last op) for arena tensors. */
static PyObject *Runtime_memory_plan(RuntimeObject *self, PyObject *unused) {
    if (check_ready(self)) return NULL;
    ddq_model_info info;
    ddq_model_get_info(self->model, &info);
    PyObject *list = PyList_New(0);
    for (int t = 0; list && t < info.tensor_count; t++) {
        size_t offset, bytes;
        int first, last;
        if (!ddq_session_tensor_plan(self->session, t, &offset, &bytes, &first, &last)) continue;
        PyObject *item = Py_BuildValue("(innii)", t, (Py_ssize_t)offset, (Py_ssize_t)bytes, first, last);
        if (!item || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(item);
    }
    return list;
}

static PyMethodDef Runtime_methods[] = {
    {"run_into", (PyCFunction)Runtime_run_into, METH_VARARGS, "run_into(input, batch, output): run the graph."},
    {"info", (PyCFunction)Runtime_info, METH_NOARGS, "info() -> dict describing the model and session."},
    {"op_nanoseconds", (PyCFunction)Runtime_op_nanoseconds, METH_NOARGS, "Per-op wall time of the last run."},
    {"memory_plan", (PyCFunction)Runtime_memory_plan, METH_NOARGS, "The arena placement of every tensor."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject RuntimeType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ddq_edge._runtime.Runtime",
    .tp_basicsize = sizeof(RuntimeObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Runtime(path, threads=1, kernels=None): a loaded bundle and a session to run it.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Runtime_init,
    .tp_dealloc = (destructor)Runtime_dealloc,
    .tp_methods = Runtime_methods,
};

static PyObject *cpu_features(PyObject *module, PyObject *unused) { return PyUnicode_FromString(ddq_cpu_features()); }

static PyMethodDef module_methods[] = {
    {"cpu_features", cpu_features, METH_NOARGS, "The CPU features the kernel dispatch sees."}, {NULL, NULL, 0, NULL}};

static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_runtime", "The ddq-edge C runtime.", -1,
                                        module_methods};

PyMODINIT_FUNC PyInit__runtime(void) {
    if (PyType_Ready(&RuntimeType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m) return NULL;
    LoadError = PyErr_NewException("ddq_edge._runtime.LoadError", PyExc_Exception, NULL);
    if (!LoadError || PyModule_AddObjectRef(m, "LoadError", LoadError) < 0 ||
        PyModule_AddObjectRef(m, "Runtime", (PyObject *)&RuntimeType) < 0 ||
        PyModule_AddStringConstant(m, "VERSION", DDQ_VERSION_STRING) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
