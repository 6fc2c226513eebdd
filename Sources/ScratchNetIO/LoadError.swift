// LoadError: the one error type of ScratchNetIO. Every message names the file (or URL) it is about, says what is
// wrong with it, and, where there is one, what the user can do about it.

/// A file could not be read, parsed, downloaded or verified.
///
/// `description` reads "`source`: `problem`" followed by the fix, for example
/// `"sample_weight.pkl: refusing to load global 'os.system': only NumPy arrays and plain containers are allowed"`.
public struct LoadError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The file path, URL or name the error is about.
    public let source: String
    /// What is wrong.
    public let problem: String
    /// What the user can do about it, if anything specific.
    public let fix: String?

    /// Creates an error about `source`.
    public init(_ source: String, _ problem: String, fix: String? = nil) {
        self.source = source
        self.problem = problem
        self.fix = fix
    }

    public var description: String {
        if let fix { return "\(source): \(problem); \(fix)" }
        return "\(source): \(problem)"
    }
}
