// Reference: the naive, obviously-correct version of every backend op, as plain scalar loops on host
// tensors. It follows the numerics contract literally (one output at a time, k in increasing order, fma),
// so every backend that promises parity must equal it bit for bit. Tests of all backends compare to it.

/// Plain scalar-loop implementations of the ``Backend`` ops on host ``Tensor``s, for tests and parity
/// checks. Slow by design; rank-1 tensors count as 1×n matrices.
public enum Reference {
    /// c (N,M) = a (N,K) · b (K,M): c[i][j] = +0, then fma(a[i][k], b[k][j], c) for k = 0..<K; a NaN
    /// result is stored as ``Numerics/canonicalNaN``.
    public static func matmul(_ a: Tensor, _ b: Tensor) throws(ShapeError) -> Tensor {
        let (n, k) = try matrix(a, "matmul: a")
        let (kb, m) = try matrix(b, "matmul: b")
        guard k == kb else {
            throw ShapeError("matmul: a (\(n),\(k)) · b (\(kb),\(m)): inner dimensions differ")
        }
        var c = [Float](repeating: 0, count: n * m)
        for i in 0..<n {
            for j in 0..<m {
                var acc: Float = 0
                for p in 0..<k { acc = acc.addingProduct(a.scalars[i * k + p], b.scalars[p * m + j]) }
                c[i * m + j] = Numerics.canonical(acc)
            }
        }
        return try Tensor(shape: [n, m], scalars: c)
    }

    /// y (N,M) = activation(x (N,K) · w (K,M) + bias (M)): the matmul's accumulation, then `acc + bias[j]`,
    /// then ``Numerics/activate(_:_:)->Float``. `bias` may be rank 1 (M) or rank 2 (1,M).
    public static func affine(_ x: Tensor, _ w: Tensor, bias: Tensor, activation: Activation)
        throws(ShapeError) -> Tensor
    {
        var y = try matmul(x, w)
        let m = y.shape[1]
        let (br, bc) = try matrix(bias, "affine: bias")
        guard br == 1, bc == m else {
            throw ShapeError("affine: bias shape \(bias.shape) must be (\(m)) or (1,\(m)) for w shape \(w.shape)")
        }
        for idx in y.scalars.indices {
            y.scalars[idx] = Numerics.activate(y.scalars[idx] + bias.scalars[idx % m], activation)
        }
        return y
    }

    /// activation(x), element by element; same shape.
    public static func apply(_ activation: Activation, _ x: Tensor) throws(ShapeError) -> Tensor {
        _ = try matrix(x, "apply: x")
        var y = x
        for idx in y.scalars.indices { y.scalars[idx] = Numerics.activate(y.scalars[idx], activation) }
        return y
    }

    /// Row-wise softmax with ``Numerics/softmax(_:)``; same shape.
    public static func softmaxRows(_ x: Tensor) throws(ShapeError) -> Tensor {
        let (rows, cols) = try matrix(x, "softmaxRows: x")
        var y = x
        y.scalars.withUnsafeMutableBufferPointer { all in
            for r in 0..<rows {
                Numerics.softmax(UnsafeMutableBufferPointer(rebasing: all[(r * cols)..<((r + 1) * cols)]))
            }
        }
        return y
    }

    /// ``Numerics/argmax(_:)`` of each row (first maximum; first NaN wins; 0 for an empty row).
    public static func argmaxRows(_ x: Tensor) throws(ShapeError) -> [Int] {
        let (rows, cols) = try matrix(x, "argmaxRows: x")
        return x.scalars.withUnsafeBufferPointer { all in
            (0..<rows).map { r in
                Numerics.argmax(UnsafeBufferPointer(rebasing: all[(r * cols)..<((r + 1) * cols)]))
            }
        }
    }

    /// A whole MLP, naively: h = x; for each layer h = ``affine(_:_:bias:activation:)``; then
    /// ``softmaxRows(_:)`` if `softmax`. What ``Backend/forward(_:layers:softmax:into:)`` must equal bit for bit.
    public static func forward(
        _ x: Tensor, layers: [(weights: Tensor, bias: Tensor, activation: Activation)], softmax: Bool
    ) throws(ShapeError) -> Tensor {
        var h = x
        for layer in layers { h = try affine(h, layer.weights, bias: layer.bias, activation: layer.activation) }
        return softmax ? try softmaxRows(h) : h
    }

    /// The (rows, cols) of a rank-1 or rank-2 tensor; other ranks are an error.
    private static func matrix(_ t: Tensor, _ what: String) throws(ShapeError) -> (Int, Int) {
        guard t.rank == 1 || t.rank == 2 else {
            throw ShapeError("\(what) must be rank 1 or 2, got shape \(t.shape)")
        }
        return t.matrixShape
    }
}
