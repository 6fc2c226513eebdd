// The `scratchnet` command-line tool: root command, error policy (one line, exit 2) and subcommands.
// It sees only the Backend protocol and the selection API; it never knows which device runs the ops.

import ArgumentParser
import Foundation
import ScratchNet
import ScratchNetOpenCL

@main
struct ScratchNetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scratchnet",
        abstract: "Run the networks of \"Deep Learning from Scratch\" on OpenCL devices or the pure-Swift CPU path, with bitwise-identical results.",
        discussion: """
            Devices: --device auto (default: first OpenCL GPU, else the CPU path), cpu, gpu, opencl, opencl:N.
            The environment variable SCRATCHNET_DEVICE sets the default; the flag wins.
            """,
        subcommands: [
            DevicesCommand.self, InferCommand.self, TrainCommand.self, ParityCommand.self, BenchCommand.self,
            ShowCommand.self, PredictCommand.self, DownloadCommand.self, FirstResultCommand.self,
        ])

    /// Runs a command; every failure becomes one line on stderr and exit status 2 (1 is reserved for
    /// "ran fine, but the verdict is negative", e.g. a parity mismatch).
    static func main() async {
        // `exit` only after `run` has returned, so no value of the command is still alive in a suspended
        // async frame (LeakSanitizer would report those as leaks; see Tests/Sanitizers).
        let status = await runCommandLine()
        if status != 0 { Foundation.exit(status) }
    }

    /// Parses and runs the command line; returns the process exit status.
    private static func runCommandLine() async -> Int32 {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch let exit as ExitCode {
            return exit.rawValue
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))  // --help, --version
                return 0
            }
            // One line even for an OpenCL build failure (its full build log is in the error, not on stderr), and
            // the whole text of every other error: its lines joined, so no reason is dropped.
            let text = (error as? OpenCLError)?.summary ?? message(for: error)
            Console.error("error: \(oneLine(text))")
            return 2
        }
    }
}

/// `text` on one line: its non-empty lines trimmed and joined with "; " (a space after a line ending in ":").
func oneLine(_ text: String) -> String {
    let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    var out = ""
    for line in lines {
        if !out.isEmpty { out += out.hasSuffix(":") ? " " : "; " }
        out += line
    }
    return out
}

/// A failure the user can fix: the message names the file/flag and what to do.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// stderr/stdout helpers.
enum Console {
    static func error(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
