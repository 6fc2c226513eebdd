// Device limits: the fixed local sizes of OpenCLTuning are fitted to what the device and each built kernel
// allow (CL_DEVICE_MAX_WORK_ITEM_SIZES, CL_DEVICE_MAX_WORK_GROUP_SIZE, CL_DEVICE_LOCAL_MEM_SIZE and the
// kernel's CL_KERNEL_WORK_GROUP_SIZE / CL_KERNEL_LOCAL_MEM_SIZE) once, after the kernels are built, instead of
// failing or letting the driver pick a local size at launch. The fitted ("effective") tuning is what
// OpenCLBackend exposes and launches with, so every launch of a kernel uses one deterministic local size.
//
// Shrinking is always safe for the bits: no local size or tile choice changes the k order of any output
// (the numerics contract), and every kernel bounds-checks work-items past the end.

/// What a device allows a launch (clGetDeviceInfo), the device side of ``OpenCLTuning/fitted(to:kernels:lossGroupCapacity:)``.
package struct OpenCLDeviceLimits: Sendable, Equatable {
    /// CL_DEVICE_MAX_WORK_GROUP_SIZE: work-items per work-group, for any kernel.
    package var maxWorkGroupSize: Int
    /// CL_DEVICE_MAX_WORK_ITEM_SIZES: the largest local size in each dimension.
    package var maxWorkItemSizes: [Int]
    /// CL_DEVICE_LOCAL_MEM_SIZE in bytes.
    package var localMemoryBytes: Int

    package init(maxWorkGroupSize: Int, maxWorkItemSizes: [Int], localMemoryBytes: Int) {
        self.maxWorkGroupSize = maxWorkGroupSize
        self.maxWorkItemSizes = maxWorkItemSizes
        self.localMemoryBytes = localMemoryBytes
    }
}

/// What one built kernel (or the strictest of a family of kernels) allows on its device
/// (clGetKernelWorkGroupInfo).
package struct OpenCLKernelLimits: Sendable, Equatable {
    /// CL_KERNEL_WORK_GROUP_SIZE; 0 when the query failed or the driver reports 0: the kernel cannot be
    /// launched as built (e.g. its private arrays do not fit).
    package var workGroupSize: Int
    /// CL_KERNEL_LOCAL_MEM_SIZE in bytes (the kernel's own `__local` arrays); `Int.max` when unknown.
    package var localMemoryBytes: Int
    /// CL_KERNEL_PRIVATE_MEM_SIZE in bytes per work-item (for messages); 0 when unknown.
    package var privateMemoryBytes: Int

    package init(workGroupSize: Int, localMemoryBytes: Int = 0, privateMemoryBytes: Int = 0) {
        self.workGroupSize = workGroupSize
        self.localMemoryBytes = localMemoryBytes
        self.privateMemoryBytes = privateMemoryBytes
    }

    /// The limits of a kernel that must satisfy both: the smaller work-group, the larger memory use.
    package func combined(with other: OpenCLKernelLimits) -> OpenCLKernelLimits {
        OpenCLKernelLimits(
            workGroupSize: min(workGroupSize, other.workGroupSize),
            localMemoryBytes: max(localMemoryBytes, other.localMemoryBytes),
            privateMemoryBytes: max(privateMemoryBytes, other.privateMemoryBytes))
    }

    /// The strictest limits of `kernels` (nil for none).
    package static func strictest(_ kernels: [OpenCLKernelLimits]) -> OpenCLKernelLimits? {
        guard let first = kernels.first else { return nil }
        return kernels.dropFirst().reduce(first) { $0.combined(with: $1) }
    }
}

extension OpenCLTuning {
    /// The kernels that launch with one shared local size of the tuning.
    package enum KernelFamily: String, CaseIterable, Sendable {
        /// ``OpenCLTuning/gemmLocal``: sn_matmul, sn_affine, their packed forms, sn_matmul_tn, sn_matmul_nt.
        case gemm
        /// ``OpenCLTuning/netLocal``: sn_net.
        case net
        /// ``OpenCLTuning/rowLocal``: sn_softmax_rows, sn_argmax_rows.
        case row
        /// ``OpenCLTuning/elementLocal``: sn_apply, sn_bytes_to_float, sn_sum_columns, sn_act_backward,
        /// sn_softmax_ce_backward, sn_update.
        case element
        /// ``OpenCLTuning/packLocal``: sn_pack_panels.
        case pack
        /// ``OpenCLTuning/lossLocal``: sn_loss_group (sn_loss always runs as one work-item).
        case loss
    }

    /// `local` shrunk until it fits: every dimension at most `maxWorkItemSizes[d]` (dimensions past the list:
    /// no limit) and the product at most `workGroupSize` (values below 1 count as 1). A dimension that has to
    /// shrink becomes the largest power of two below it (so powers of two are halved and the product stays a
    /// power of two); the largest dimension shrinks first, the later one on ties. A local size that already
    /// fits is returned unchanged.
    package static func fit(_ local: [Int], workGroupSize: Int, maxWorkItemSizes: [Int]) -> [Int] {
        var result = local.map { max(1, $0) }
        for d in result.indices where d < maxWorkItemSizes.count {
            let limit = max(1, maxWorkItemSizes[d])
            while result[d] > limit { result[d] = powerOfTwoBelow(result[d]) }
        }
        let limit = max(1, workGroupSize)
        while result.reduce(1, *) > limit {
            guard let largest = result.indices.max(by: { result[$0] < result[$1] || (result[$0] == result[$1] && $0 < $1) })
            else { break }
            result[largest] = powerOfTwoBelow(result[largest])
        }
        return result
    }

    /// The largest power of two strictly below `n` (1 for n <= 2).
    static func powerOfTwoBelow(_ n: Int) -> Int {
        guard n > 2 else { return 1 }
        return 1 << (Int.bitWidth - 1 - (n - 1).leadingZeroBitCount)
    }

    /// The SN_LOSS_WG train.cl is built with on `device`: the largest sn_loss_group work-group
    /// (``OpenCLBackend/lossGroup``, 64) fitted to the device's work-group limits and halved until its local
    /// array (SN_LOSS_WG floats) fits the device's local memory; 1 if not even one float fits.
    package static func lossGroupCapacity(device: OpenCLDeviceLimits) -> Int {
        var capacity = fit(
            [OpenCLBackend.lossGroup], workGroupSize: device.maxWorkGroupSize,
            maxWorkItemSizes: device.maxWorkItemSizes)[0]
        while capacity > 1, capacity * MemoryLayout<Float>.stride > device.localMemoryBytes {
            capacity = powerOfTwoBelow(capacity)
        }
        return capacity
    }

    /// The -D defines of every program on a device whose sn_loss_group takes at most `lossGroupCapacity`
    /// work-items (``lossGroupCapacity(device:)``): ``defines`` plus SN_LOSS_WG unless it is train.cl's
    /// default (64), so the usual build options (and program cache keys) stay as they were.
    package func defines(lossGroupCapacity: Int) -> [(String, Int)] {
        defines + (lossGroupCapacity == OpenCLBackend.lossGroup ? [] : [("SN_LOSS_WG", lossGroupCapacity)])
    }

    /// The sn_loss_group work-group for a requested size: 1 (run sn_loss instead) when `requested` is 1, when
    /// the kernel's local memory does not fit the device's or the kernel cannot run at all; else `requested`
    /// at most `capacity` (the SN_LOSS_WG it was built with) and fitted to the kernel and device work-group
    /// limits.
    package static func fitLossGroup(
        _ requested: Int, capacity: Int, device: OpenCLDeviceLimits, kernel: OpenCLKernelLimits
    ) -> Int {
        guard requested > 1, kernel.workGroupSize > 0, kernel.localMemoryBytes <= device.localMemoryBytes else {
            return 1
        }
        return fit(
            [min(requested, capacity)], workGroupSize: min(kernel.workGroupSize, device.maxWorkGroupSize),
            maxWorkItemSizes: device.maxWorkItemSizes)[0]
    }

    /// The next narrower SN_NET_MAXW to rebuild net.cl with when sn_net cannot run at `netMaxWidth` (its
    /// private rows are SN_NET_ROWS × SN_NET_MAXW floats): half, rounded down to a multiple of ``tileCols``;
    /// nil at ``tileCols`` already (then the whole-network kernel is switched off: layer by layer).
    package var narrowerNetWidth: Int? {
        guard netMaxWidth > tileCols else { return nil }
        return max(tileCols, netMaxWidth / 2 / tileCols * tileCols)
    }

    /// This tuning with every fixed local size fitted to `device` and the built kernels' limits per family
    /// (a family missing from `kernels` is limited by the device only):
    /// - gemm, net, row, element and pack local sizes: ``fit(_:workGroupSize:maxWorkItemSizes:)`` against
    ///   the smaller of the family's CL_KERNEL_WORK_GROUP_SIZE and CL_DEVICE_MAX_WORK_GROUP_SIZE;
    /// - ``lossLocal``: ``fitLossGroup(_:capacity:device:kernel:)`` with the SN_LOSS_WG train.cl was built
    ///   with (1, i.e. sn_loss, when sn_loss_group's local memory does not fit);
    /// - a whole-network kernel that cannot run (work-group size 0) sets ``netMaxLayers`` to 0: every network
    ///   runs layer by layer.
    /// Nothing else changes; the result is a pure function of its inputs.
    package func fitted(
        to device: OpenCLDeviceLimits, kernels: [KernelFamily: OpenCLKernelLimits], lossGroupCapacity: Int
    ) -> OpenCLTuning {
        func groupLimit(_ family: KernelFamily) -> Int {
            min(kernels[family]?.workGroupSize ?? device.maxWorkGroupSize, device.maxWorkGroupSize)
        }
        func fit1(_ size: Int, _ family: KernelFamily) -> Int {
            Self.fit([size], workGroupSize: groupLimit(family), maxWorkItemSizes: device.maxWorkItemSizes)[0]
        }
        var t = self
        t.gemmLocal = Self.fit(gemmLocal, workGroupSize: groupLimit(.gemm), maxWorkItemSizes: device.maxWorkItemSizes)
        t.netLocal = fit1(netLocal, .net)
        t.rowLocal = fit1(rowLocal, .row)
        t.elementLocal = fit1(elementLocal, .element)
        t.packLocal = fit1(packLocal, .pack)
        t.lossLocal = Self.fitLossGroup(
            lossLocal, capacity: lossGroupCapacity, device: device,
            kernel: kernels[.loss] ?? OpenCLKernelLimits(workGroupSize: device.maxWorkGroupSize))
        if let net = kernels[.net], net.workGroupSize == 0 { t.netMaxLayers = 0 }
        return t
    }
}
