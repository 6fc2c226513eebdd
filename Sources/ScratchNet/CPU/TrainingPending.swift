// TEMPORARY (being replaced by CPU/Training.swift): lets the package build while the CPU training ops are written.
extension CPUBackend {
    public func matmulTransposedA(_ a: DeviceMatrix, _ b: DeviceMatrix, into c: DeviceMatrix) throws { throw BackendError.device("pending") }
    public func matmulTransposedB(_ a: DeviceMatrix, _ b: DeviceMatrix, into c: DeviceMatrix) throws { throw BackendError.device("pending") }
    public func sumColumns(_ x: DeviceMatrix, into y: DeviceMatrix) throws { throw BackendError.device("pending") }
    public func activationBackward(_ activation: Activation, output y: DeviceMatrix, gradient dy: DeviceMatrix, into dx: DeviceMatrix) throws { throw BackendError.device("pending") }
    public func crossEntropy(_ y: DeviceMatrix, targets t: DeviceMatrix, into loss: DeviceMatrix, at index: Int) throws { throw BackendError.device("pending") }
    public func sumOfSquares(_ y: DeviceMatrix, targets t: DeviceMatrix, into loss: DeviceMatrix, at index: Int) throws { throw BackendError.device("pending") }
    public func softmaxCrossEntropyBackward(_ y: DeviceMatrix, targets t: DeviceMatrix, into dx: DeviceMatrix) throws { throw BackendError.device("pending") }
    public func update(_ rule: UpdateRule, parameter p: DeviceMatrix, gradient g: DeviceMatrix, state: [DeviceMatrix]) throws { throw BackendError.device("pending") }
}
