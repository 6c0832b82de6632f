import ArgumentParser

@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "circle-bench",
        abstract: "Load generator for Circle on loopback: measures a running server and prints the figures.",
        discussion: "Every run is bounded in count and time and stops by itself. See scripts/bench-gateway.sh, scripts/bench-messaging.sh and scripts/bench-presence.sh.",
        subcommands: [ChaosBench.self, ConnectionsBench.self, DestructionBench.self, EventsBench.self, FanOutLimitBench.self, MessagesBench.self, PresenceBench.self, SignalingBench.self]
    )
}
