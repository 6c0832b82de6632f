import CircleCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// CPU time of named processes and their children, from /proc (Linux), to say what each part of
/// the system spends per message.
struct ProcessCPU {
    /// Name and pid of each process to follow; a process's descendants (PostgreSQL's backends,
    /// nginx's workers) count with it.
    let processes: [(name: String, pid: Int32)]

    /// Parses `name=pid,name=pid`; this process is added as `bench`.
    init(_ spec: String) throws {
        var processes: [(String, Int32)] = [("bench", getpid())]
        for part in spec.split(separator: ",") {
            let pieces = part.split(separator: "=")
            guard pieces.count == 2, let pid = Int32(pieces[1]), pid > 0 else { throw BenchError("--cpu wants name=pid,...: \(part)") }
            processes.append((String(pieces[0]), pid))
        }
        self.processes = processes
    }

    /// CPU seconds so far of each process with its descendants (live, and exited), in
    /// `processes` order.
    func sample() -> [Double] {
        var own: [Int32: (parent: Int32, ticks: Int)] = [:]
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let pid = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            // After the command name: state, ppid, ... utime is field 14 and stime 15 of the line;
            // cutime and cstime (16, 17) are of its children that exited and were waited for
            // (PostgreSQL's backends that ended, which would otherwise vanish from the sum).
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 14, let parent = Int32(fields[1]), let user = Int(fields[11]), let system = Int(fields[12]),
                  let childrenUser = Int(fields[13]), let childrenSystem = Int(fields[14]) else { continue }
            own[pid] = (parent, user + system + childrenUser + childrenSystem)
        }
        let perSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        var children: [Int32: [Int32]] = [:]
        for (pid, entry) in own { children[entry.parent, default: []].append(pid) }
        return processes.map { process in
            var ticks = 0
            var pending = [process.pid]
            while let pid = pending.popLast() {
                ticks += own[pid]?.ticks ?? 0
                pending += children[pid] ?? []
            }
            return Double(ticks) / perSecond
        }
    }

    /// What each process spends per second while nothing is asked of it.
    struct Baseline {
        /// CPU seconds per second, in `processes` order.
        let rates: [Double]

        init(from start: [Double], to end: [Double], over elapsed: Duration) {
            let seconds = max(0.001, Double(elapsed.milliseconds) / 1000)
            rates = zip(start, end).map { ($1 - $0) / seconds }
        }

        /// A start sample moved forward by what each process spends idle over `elapsed`: the
        /// delta from it to an end sample is what the work added.
        func subtracted(from start: [Double], over elapsed: Duration) -> [Double] {
            let seconds = Double(elapsed.milliseconds) / 1000
            return zip(start, rates).map { $0 + $1 * seconds }
        }

        func describe(_ names: [String]) -> String {
            zip(names, rates).map { "\($0) \(String(format: "%.1f", $1 * 1000))" }.joined(separator: ", ")
        }
    }

    /// One line: each process's CPU milliseconds per message between two samples.
    func perMessage(from start: [Double], to end: [Double], messages: Int, server: Set<String>) -> String {
        guard messages > 0 else { return "no messages" }
        var parts: [String] = []
        var serverTotal = 0.0
        var total = 0.0
        for (index, process) in processes.enumerated() {
            let ms = (end[index] - start[index]) * 1000 / Double(messages)
            parts.append("\(process.name) \(String(format: "%.3f", ms))")
            total += ms
            if server.contains(process.name) { serverTotal += ms }
        }
        return parts.joined(separator: ", ") + String(format: "; server side %.3f ms, all %.3f ms", serverTotal, total)
    }
}
