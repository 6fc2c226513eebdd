// The progress bar of `scratchnet train`: ScratchNetIO's ProgressBar under the name the commands use. It draws
// "epoch 3/10 [=====>    ] 312/600 12.3 s ETA 4.1 s loss 0.31" in place on a terminal (stderr by default,
// at most ~10 redraws a second) and only the final per-epoch lines when stderr is not a terminal. The type lives
// in the library so its tests can inject the output sink and the clock.

import ScratchNetIO

/// `ProgressReporter(total:label:isTerminal:output:clock:)`; `update(done:extra:)` per step, `finish(line:)` at
/// the end. See ``ProgressBar``.
typealias ProgressReporter = ProgressBar
