/// The conversations of the presence and fan-out benchmarks: K rounds, each a shuffled cut of
/// every member into groups of G (in a round, members left over after the last full group sit
/// that round out).
struct ConversationLayout {
    /// Each conversation's members.
    let groups: [[Int]]
    /// Each member's conversations, as indices into `groups`.
    let conversationsOf: [[Int]]

    init(users: Int, perUser: Int, groupSize: Int) {
        var generator = SystemRandomNumberGenerator()
        var groups: [[Int]] = []
        for _ in 0..<perUser {
            let order = Array(0..<users).shuffled(using: &generator)
            stride(from: 0, to: users - groupSize + 1, by: groupSize).forEach { groups.append(Array(order[$0..<$0 + groupSize])) }
        }
        var conversationsOf = [[Int]](repeating: [], count: users)
        for (index, group) in groups.enumerated() {
            for member in group { conversationsOf[member].append(index) }
        }
        self.groups = groups
        self.conversationsOf = conversationsOf
    }

    /// Up to `count` (member, conversation) pairs in random order, each at most once, so the
    /// typing limit (one frame per member and conversation every 2 s) never drops one of them.
    func shuffledPairs(upTo count: Int) -> [(member: Int, conversation: Int)] {
        Array(conversationsOf.indices.flatMap { member in conversationsOf[member].map { (member, $0) } }.shuffled().prefix(count))
    }
}
