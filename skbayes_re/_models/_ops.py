"""Graph building blocks shared by the model specifications.

The ELBO step of every model is compiled by PyTensor's C linker into a single C module, which
needs every op of the graph to have C code. PyTensor's matrix products become BLAS ops, which
have none when no optimised BLAS is linked, so products here are written as elementwise
products and sums (tiny ones) or through ``MatMul``, a small C op (large ones).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.link.c.op import COp

from .statistics import LOG_2PI, count_prefixed

__all__ = ["LOG_2PI", "count_prefixed", "dot", "matmul", "matrix_vector", "quadratic", "rows_of"]


def dot(a, b):
    """Vector inner product as an elementwise product and a sum (no BLAS op; these products
    are tiny: features x groups at most)."""
    return pt.sum(a * b)


def quadratic(matrix, left, right):
    """``left @ matrix @ right`` without BLAS ops (see ``dot``)."""
    return pt.sum(matrix * left[:, None] * right[None, :])


def rows_of(matrix, code):
    """``matrix[code]`` (each row's group's row of a (G, q) matrix), gathered from the
    flattened matrix: the gradient of a gather of matrix rows (``AdvancedIncSubtensor1`` on
    a matrix) has no C code, which sends the whole step from one C module to one per op,
    while a gather from a vector has (the multiclass model's cold compile: 29 s that way,
    13 s this way)."""
    width = matrix.shape[1]
    flat = (code[:, None] * width + pt.arange(width)[None, :]).reshape((-1,))
    return matrix.reshape((-1,))[flat].reshape((code.shape[0], width))


def matrix_vector(matrix, vector):
    """``matrix @ vector`` by ``MatMul``: for a (features + 1) x groups matrix, a broadcast
    product and a row sum (and the same again in the gradient) would write and reread a
    temporary of that size several times per step, most of a step's cost with many groups."""
    return pt.sum(matmul(matrix, vector[:, None]), axis=1)


class MatMul(COp):
    """``a @ b`` for float64 matrices by plain C loops, without BLAS (see ``dot``).

    PyTensor's own matrix products become BLAS ops, which have no C code when no optimised
    BLAS is linked; one such op sends the whole ELBO step from the single-module C linker to
    one module per op (a much slower cold compile). A broadcast product and a sum would stay in
    C but materialise an ``(n, fan_in, fan_out)`` temporary and cost several times more per
    step; these loops make one pass over the rows, within a small factor of a BLAS call for
    the narrow layers of this model.
    """

    __props__ = ()

    def make_node(self, a, b):
        a, b = pt.as_tensor_variable(a), pt.as_tensor_variable(b)
        if a.ndim != 2 or b.ndim != 2 or a.dtype != "float64" or b.dtype != "float64":
            raise TypeError("MatMul takes two float64 matrices.")
        out = pt.matrix(dtype="float64", shape=(a.type.shape[0], b.type.shape[1]))
        return Apply(self, [a, b], [out])

    def perform(self, node, inputs, outputs):
        a, b = inputs
        outputs[0][0] = np.asarray(a @ b, dtype=np.float64)

    def infer_shape(self, *args):
        # ``(node, input_shapes)``; PyTensor before 3 passes ``fgraph`` first (PyTensor 3 warns
        # on a signature that still names it), so the shapes are read as the last argument.
        shapes = args[-1]
        return [(shapes[0][0], shapes[1][1])]

    def pullback(self, inputs, outputs, cotangents):
        a, b = inputs
        (g,) = cotangents
        return [matmul(g, b.T), matmul(a.T, g)]

    # PyTensor 3 differentiates through `pullback` (overriding `grad`/`L_op` is deprecated
    # there); earlier versions call `L_op`, which takes the same arguments.
    if not hasattr(COp, "pullback"):
        L_op = pullback

    def c_code_cache_version(self):
        return (4,)

    def c_code(self, node, name, inputs, outputs, sub):
        a, b = inputs
        (z,) = outputs
        fail = sub["fail"]
        return f"""
        {{
        const npy_intp m = PyArray_DIMS({a})[0], k = PyArray_DIMS({a})[1];
        const npy_intp n = PyArray_DIMS({b})[1];
        if (PyArray_DIMS({b})[0] != k) {{
            PyErr_SetString(PyExc_ValueError, "MatMul: shapes do not align.");
            {fail}
        }}
        if ({z} == NULL || PyArray_DIMS({z})[0] != m || PyArray_DIMS({z})[1] != n
            || !PyArray_IS_C_CONTIGUOUS({z})) {{
            npy_intp dims[2] = {{m, n}};
            Py_XDECREF({z});
            {z} = (PyArrayObject*)PyArray_EMPTY(2, dims, NPY_FLOAT64, 0);
            if (!{z}) {{ {fail} }}
        }}
        {{
        const npy_intp w = (npy_intp)sizeof(double);
        /* The stride of an axis of length one is never used (and may be anything). */
        const npy_intp sa0 = m > 1 ? PyArray_STRIDES({a})[0] : 0;
        const npy_intp sa1 = k > 1 ? PyArray_STRIDES({a})[1] : 0;
        const npy_intp sb0 = k > 1 ? PyArray_STRIDES({b})[0] : 0;
        const npy_intp sb1 = n > 1 ? PyArray_STRIDES({b})[1] : 0;
        if (sa0 % w || sa1 % w || sb0 % w || sb1 % w
            || !PyArray_ISALIGNED({a}) || !PyArray_ISALIGNED({b})) {{
            PyErr_SetString(PyExc_ValueError, "MatMul: unaligned input.");
            {fail}
        }}
        {{
        const double* A = (const double*)PyArray_DATA({a});
        const double* B = (const double*)PyArray_DATA({b});
        const npy_intp a0 = sa0 / w, a1 = sa1 / w, b0 = sb0 / w, b1 = sb1 / w;
        double* Z = (double*)PyArray_DATA({z});
        for (npy_intp i = 0; i < m * n; ++i) Z[i] = 0.0;
        if (m >= k) {{
            /* Many rows, short contraction (forward pass, input gradients): blocks of
               rows, the row loop innermost so that it is long and vectorises. */
            const npy_intp block = 64;
            for (npy_intp start = 0; start < m; start += block) {{
                const npy_intp stop = start + block < m ? start + block : m;
                for (npy_intp l = 0; l < k; ++l) {{
                    const double* acol = A + l * a1;
                    for (npy_intp j = 0; j < n; ++j) {{
                        const double bv = B[l * b0 + j * b1];
                        double* zcol = Z + j;
                        for (npy_intp i = start; i < stop; ++i)
                            zcol[i * n] += acol[i * a0] * bv;
                    }}
                }}
            }}
        }} else if (n == 1) {{
            /* Long contraction into a column (gradient of the output weights): dots. */
            for (npy_intp i = 0; i < m; ++i) {{
                const double* arow = A + i * a0;
                double total = 0.0;
                for (npy_intp l = 0; l < k; ++l) total += arow[l * a1] * B[l * b0];
                Z[i] = total;
            }}
        }} else {{
            /* Long contraction (weight gradients x.T @ g): one pass over the rows. */
            for (npy_intp l = 0; l < k; ++l) {{
                const double* brow = B + l * b0;
                const double* acol = A + l * a1;
                for (npy_intp i = 0; i < m; ++i) {{
                    const double av = acol[i * a0];
                    double* zrow = Z + i * n;
                    for (npy_intp j = 0; j < n; ++j) zrow[j] += av * brow[j * b1];
                }}
            }}
        }}
        }}
        }}
        }}
        """


_MATMUL = MatMul()


def matmul(a, b):
    """``a @ b`` without BLAS ops (see ``MatMul``)."""
    return _MATMUL(pt.cast(a, "float64"), pt.cast(b, "float64"))
