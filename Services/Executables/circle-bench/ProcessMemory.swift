import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Resident memory of a process, from /proc.
enum ProcessMemory {
    /// VmRSS of `pid`, in KiB.
    static func residentKiB(pid: Int32) throws -> Int {
        let text = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let value = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else {
            throw BenchError("no VmRSS for pid \(pid)")
        }
        return value
    }

    /// Raises this process's open-file limit as far as allowed (many sockets).
    static func raiseFileLimit() {
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
    }
}

/// Percentiles of latencies in nanoseconds.
struct LatencySummary {
    let count: Int
    let p50: Double
    let p99: Double
    let max: Double

    init(_ nanos: [UInt64]) {
        let sorted = nanos.sorted()
        count = sorted.count
        func pick(_ q: Double) -> Double {
            guard !sorted.isEmpty else { return .nan }
            return Double(sorted[min(sorted.count - 1, Int((Double(sorted.count) * q).rounded(.up)) - 1)]) / 1e6
        }
        p50 = pick(0.50)
        p99 = pick(0.99)
        max = Double(sorted.last ?? 0) / 1e6
    }

    /// "p50 … ms, p99 … ms, max … ms", as the benchmarks report it.
    var text: String {
        String(format: "p50 %.2f ms, p99 %.2f ms, max %.2f ms", p50, p99, max)
    }
}

/// Calls `send` for each item on a steady schedule of `rate` a second from the first (waiting
/// for each one's time, never sending early); how long the sending took.
func paced<Item>(_ items: [Item], perSecond rate: Int, _ send: (Item) throws -> Void) async throws -> Duration {
    let start = ContinuousClock.now
    for (index, item) in items.enumerated() {
        let due = start + .nanoseconds(Int64(index) * 1_000_000_000 / Int64(rate))
        if ContinuousClock.now < due { try await Task.sleep(until: due, clock: .continuous) }
        try send(item)
    }
    return ContinuousClock.now - start
}

/// `count` things over `took`, as a rate: "(1000 /s)".
func rateText(_ count: Int, over took: Duration) -> String {
    String(format: "(%.0f /s)", Double(count) / max(0.001, Double(took.milliseconds) / 1000))
}

/// Writes a result to standard output.
func report(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

/// A logger that stays silent unless something is critical.
func quietLogger() -> Logger {
    var logger = Logger(label: "bench")
    logger.logLevel = .critical
    return logger
}
