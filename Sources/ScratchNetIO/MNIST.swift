// IDX and MNIST: the IDX file format (big-endian header: two zero bytes, a type code, the number of dimensions,
// then one 32-bit size per dimension, then the data) and the MNIST data set stored in it, raw or gzip-compressed.
// MNISTSet turns the bytes into Tensors exactly as the book's load_mnist does.

import Foundation
import ScratchNet

/// The IDX file format used by MNIST.
public enum IDX {
    /// The largest decompressed IDX file accepted (the MNIST training images are 47 MB).
    public static let maxSize = 1 << 30

    /// Reads an unsigned-byte IDX file (gzip-compressed or not, detected by the 1f 8b magic).
    /// - Returns: the dimensions (outermost first) and the `dims.reduce(1, *)` data bytes.
    /// - Throws: ``LoadError`` naming `source` for a bad magic number, a type other than unsigned byte, or data
    ///   shorter or longer than the dimensions declare.
    public static func read(_ data: Data, source: String) throws(LoadError) -> (dims: [Int], bytes: [UInt8]) {
        let plain: [UInt8]
        if Gzip.isGzip(data) {
            // Read the header from the first decompressed bytes, then inflate exactly the size it declares: a
            // gzip bomb (or a header that lies) is stopped after at most that many bytes, never at maxSize.
            let head = try Gzip.prefix(data, count: 4 + 4 * 255, source: source)
            var headReader = ByteReader(head, source: source)
            let (dims, count) = try header(&headReader)
            let total = headReader.offset + count
            plain = try Zlib.inflate([UInt8](data)[...], format: .gzip, maxOutput: total,
                                     limitReason: "what the IDX header's dimensions \(dims) declare", source: source)
        } else {
            plain = [UInt8](data)
        }
        var reader = ByteReader(plain, source: source)
        let (dims, count) = try header(&reader)
        guard reader.remaining == count else {
            let problem = reader.remaining < count
                ? "is truncated: dimensions \(dims) need \(count) data bytes but only \(reader.remaining) are present"
                : "has \(reader.remaining - count) unexpected bytes after the \(count) data bytes its dimensions \(dims) declare"
            throw LoadError(source, problem, fix: "the file is damaged; download it again")
        }
        return (dims, Array(reader.bytes[reader.offset...]))
    }

    /// Parses the magic and dimensions; returns them and the data byte count, checked against ``maxSize``.
    private static func header(_ reader: inout ByteReader) throws(LoadError) -> (dims: [Int], count: Int) {
        let source = reader.source
        let zero0 = try reader.u8("IDX magic"), zero1 = try reader.u8("IDX magic")
        let type = try reader.u8("IDX magic"), rank = Int(try reader.u8("IDX magic"))
        guard zero0 == 0, zero1 == 0 else {
            throw LoadError(source, "not an IDX file (it starts with \(hex(zero0, zero1)), not 00 00)", fix: "pass the MNIST files (e.g. t10k-images-idx3-ubyte.gz)")
        }
        guard type == 0x08 else {
            throw LoadError(source, String(format: "IDX element type 0x%02x is not supported (only 0x08, unsigned byte, as in MNIST)", type))
        }
        guard rank >= 1 else { throw LoadError(source, "IDX file declares 0 dimensions", fix: "the file is damaged; download it again") }
        var dims: [Int] = []
        var count = 1
        for d in 0..<rank {
            let n = try reader.u32be("IDX dimension \(d)")
            dims.append(n)
            let (p, overflow) = count.multipliedReportingOverflow(by: n)
            guard !overflow, p <= maxSize else {
                throw LoadError(source, "IDX dimensions \(dims) declare more data than the \(maxSize)-byte limit (IDX.maxSize)",
                                fix: "the file is damaged or not an MNIST-style data set; download it again")
            }
            count = p
        }
        return (dims, count)
    }

    private static func hex(_ a: UInt8, _ b: UInt8) -> String { String(format: "%02x %02x", a, b) }
}

/// An MNIST split held as bytes: `count` images of `rows`×`cols` pixels (row-major, one byte each) and `count`
/// labels (0...9).
public struct MNISTSet: Sendable {
    /// All pixels, image after image (`count * rows * cols` bytes).
    public let images: [UInt8]
    /// All labels, one byte per image.
    public let labels: [UInt8]
    /// The number of images (and labels).
    public let count: Int
    /// Image height in pixels.
    public let rows: Int
    /// Image width in pixels.
    public let cols: Int

    /// Creates a set, checking that the byte counts match `count`, `rows` and `cols` and that labels are 0...9.
    public init(images: [UInt8], labels: [UInt8], count: Int, rows: Int, cols: Int, source: String = "MNIST") throws(LoadError) {
        let (pixels, o1) = rows.multipliedReportingOverflow(by: cols)
        let (total, o2) = count.multipliedReportingOverflow(by: pixels)
        guard count >= 0, rows > 0, cols > 0, !o1, !o2, images.count == total else {
            throw LoadError(source, "\(images.count) image bytes do not hold \(count) images of \(rows)x\(cols)")
        }
        guard labels.count == count else {
            throw LoadError(source, "\(count) images but \(labels.count) labels", fix: "use the image and label files of the same split")
        }
        if let bad = labels.firstIndex(where: { $0 > 9 }) {
            throw LoadError(source, "label \(bad) is \(labels[bad]), not a digit 0...9", fix: "the label file is damaged; download it again")
        }
        self.images = images
        self.labels = labels
        self.count = count
        self.rows = rows
        self.cols = cols
    }

    /// `Float(byte) / 255` for every byte value: correctly rounded float32 division, the same as NumPy's
    /// `x.astype(np.float32) / 255.0` in the book's load_mnist.
    static let normalized: [Float] = (0..<256).map { Float($0) / 255 }

    /// Images `range` as an `(n, rows*cols)` Tensor, or `(n, 1, rows, cols)` when `flatten` is false.
    /// With `normalize`, pixels are `Float(byte) / 255` as the book does; otherwise the raw 0...255 values.
    /// The range is clamped to `0..<count`.
    public func images(_ range: Range<Int>, normalize: Bool = true, flatten: Bool = true) -> Tensor {
        let r = range.clamped(to: 0..<count)
        let pixels = rows * cols
        let start = r.lowerBound * pixels, n = r.count * pixels
        let scalars = [Float](unsafeUninitializedCapacity: n) { out, initialized in
            images.withUnsafeBufferPointer { src in
                Self.normalized.withUnsafeBufferPointer { table in
                    if normalize {
                        for i in 0..<n { out[i] = table[Int(src[start + i])] }
                    } else {
                        for i in 0..<n { out[i] = Float(src[start + i]) }
                    }
                }
            }
            initialized = n
        }
        let shape = flatten ? [r.count, pixels] : [r.count, 1, rows, cols]
        // The shape always matches the slice, so this cannot fail; an empty tensor is the fallback.
        return (try? Tensor(shape: shape, scalars: scalars)) ?? Tensor(zeros: flatten ? [0, pixels] : [0, 1, rows, cols])
    }

    /// Labels `range` as an `(n)` Tensor of label values, or `(n, 10)` one-hot rows when `oneHot`.
    /// The range is clamped to `0..<count`.
    public func labels(_ range: Range<Int>, oneHot: Bool = false) -> Tensor {
        let r = range.clamped(to: 0..<count)
        let slice = labels[r]
        if !oneHot {
            return (try? Tensor(shape: [r.count], scalars: slice.map { Float($0) })) ?? Tensor(zeros: [0])
        }
        var t = Tensor(zeros: [r.count, 10])
        for (i, label) in slice.enumerated() { t.scalars[i * 10 + Int(label)] = 1 }
        return t
    }
}

/// Loading MNIST from the four IDX files (`train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`,
/// `t10k-images-idx3-ubyte.gz`, `t10k-labels-idx1-ubyte.gz`, also accepted without `.gz`).
public enum MNIST {
    /// Which half of MNIST: 60,000 training or 10,000 test images.
    public enum Split: String, Sendable {
        case train
        case test

        /// The file name prefix: "train" or "t10k".
        public var filePrefix: String { self == .train ? "train" : "t10k" }
    }

    /// The file names of a split's images and labels (gzip-compressed form).
    public static func fileNames(_ split: Split) -> (images: String, labels: String) {
        ("\(split.filePrefix)-images-idx3-ubyte.gz", "\(split.filePrefix)-labels-idx1-ubyte.gz")
    }

    /// Loads a split from `directory`, checking magic numbers (0x803 images, 0x801 labels), shapes and that the
    /// image and label counts match.
    public static func load(directory: URL, split: Split) throws(LoadError) -> MNISTSet {
        let names = fileNames(split)
        let (imageURL, imageData) = try read(directory, names.images)
        let (labelURL, labelData) = try read(directory, names.labels)
        let image = try IDX.read(imageData, source: imageURL.path)
        guard image.dims.count == 3 else {
            throw LoadError(imageURL.path, "is not an MNIST image file: IDX magic says \(image.dims.count) dimensions, images need 3 (magic 0x00000803)",
                            fix: "check that images and labels are not swapped")
        }
        let label = try IDX.read(labelData, source: labelURL.path)
        guard label.dims.count == 1 else {
            throw LoadError(labelURL.path, "is not an MNIST label file: IDX magic says \(label.dims.count) dimensions, labels need 1 (magic 0x00000801)",
                            fix: "check that images and labels are not swapped")
        }
        guard image.dims[0] == label.dims[0] else {
            throw LoadError(labelURL.path, "has \(label.dims[0]) labels but \(imageURL.lastPathComponent) has \(image.dims[0]) images",
                            fix: "use the image and label files of the same split")
        }
        guard image.dims[1] > 0, image.dims[2] > 0 else {
            throw LoadError(imageURL.path, "declares empty \(image.dims[1])x\(image.dims[2]) images", fix: "the file is damaged; download it again")
        }
        return try MNISTSet(images: image.bytes, labels: label.bytes, count: image.dims[0], rows: image.dims[1],
                            cols: image.dims[2], source: labelURL.path)
    }

    /// `$MNIST_DIR` if set; else `../shared/mnist` or `./shared/mnist` (relative to the current directory) if
    /// that folder exists; else the test set in the box (``Downloads/bundledData``, `Data/mnist` of the package);
    /// else nil.
    public static func defaultDirectory(environment: [String: String]) -> URL? {
        if let dir = environment["MNIST_DIR"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        return Downloads.existing(["../shared/mnist", "./shared/mnist"], isDirectory: true)
            ?? Downloads.bundled("mnist", isDirectory: true)
    }

    /// Reads `name` (or, if absent, the same name without `.gz`) from `directory`.
    private static func read(_ directory: URL, _ name: String) throws(LoadError) -> (URL, Data) {
        let gz = directory.appendingPathComponent(name)
        let plain = directory.appendingPathComponent(String(name.dropLast(3)))
        let fm = FileManager.default
        let url = fm.fileExists(atPath: gz.path) || !fm.fileExists(atPath: plain.path) ? gz : plain
        guard fm.fileExists(atPath: url.path) else {
            throw LoadError(gz.path, "MNIST file not found",
                            fix: "put the MNIST files in \(directory.path), point MNIST_DIR (or --data) at the folder that has them, or download them (scratchnet download)")
        }
        do {
            return (url, try Data(contentsOf: url))
        } catch {
            throw LoadError(url.path, "cannot read the file (\(error.localizedDescription))", fix: "check its permissions")
        }
    }
}
