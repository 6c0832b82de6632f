import CircleCore

/// What a gateway tells the presence service about its realtime sockets, as entries of the
/// `presence.connections` stream (one type both sides use). Presence replicas read the stream
/// through one consumer group, so each entry is handled once; a crashed replica's entries are
/// claimed by another.
public enum ConnectionReport: Sendable, Equatable {
    /// A member's socket opened.
    case open(gateway: String, socket: String, user: String)
    /// The socket closed.
    case close(gateway: String, socket: String, user: String)
    /// The gateway is alive and holds its sockets until `until` (milliseconds since 1970).
    case lease(gateway: String, until: Int64)
    /// The gateway's complete list of open sockets (after it could not report some).
    case sync(gateway: String, until: Int64, sockets: [(socket: String, user: String)])
    /// The gateway stopped: its sockets are gone.
    case down(gateway: String)

    public static let stream = "presence.connections"
    public static let group = "presence"
    /// Where presence asks a gateway for a `sync` (the payload is the gateway's id): it heard a
    /// lease from a gateway it had dropped for gone, so its list of that gateway's sockets is
    /// wrong until the gateway lists them again.
    public static let resyncChannel = "presence.resync"

    /// When an entry was added to the stream (milliseconds since 1970, the bus's clock: a
    /// stream entry's id starts with it), or nil for an id of another form.
    public static func addedAt(entryId: String) -> Int64? {
        entryId.split(separator: "-", maxSplits: 1).first.flatMap { Int64($0) }
    }

    public static func == (a: ConnectionReport, b: ConnectionReport) -> Bool { a.fields == b.fields }

    /// The stream entry's fields.
    public var fields: [String: String] {
        switch self {
        case .open(let gateway, let socket, let user): ["op": "open", "gateway": gateway, "socket": socket, "user": user]
        case .close(let gateway, let socket, let user): ["op": "close", "gateway": gateway, "socket": socket, "user": user]
        case .lease(let gateway, let until): ["op": "lease", "gateway": gateway, "until": String(until)]
        case .sync(let gateway, let until, let sockets):
            ["op": "sync", "gateway": gateway, "until": String(until), "sockets": sockets.map { "\($0.socket):\($0.user)" }.joined(separator: ",")]
        case .down(let gateway): ["op": "down", "gateway": gateway]
        }
    }

    /// Reads an entry; nil for one this build does not know.
    public init?(fields: [String: String]) {
        guard let gateway = fields["gateway"], !gateway.isEmpty else { return nil }
        switch fields["op"] {
        case "open":
            guard let socket = fields["socket"], let user = fields["user"] else { return nil }
            self = .open(gateway: gateway, socket: socket, user: user)
        case "close":
            guard let socket = fields["socket"], let user = fields["user"] else { return nil }
            self = .close(gateway: gateway, socket: socket, user: user)
        case "lease":
            guard let until = fields["until"].flatMap(Int64.init) else { return nil }
            self = .lease(gateway: gateway, until: until)
        case "sync":
            guard let until = fields["until"].flatMap(Int64.init), let list = fields["sockets"] else { return nil }
            let sockets = list.split(separator: ",").compactMap { item -> (String, String)? in
                let parts = item.split(separator: ":", maxSplits: 1)
                return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
            }
            self = .sync(gateway: gateway, until: until, sockets: sockets)
        case "down":
            self = .down(gateway: gateway)
        default:
            return nil
        }
    }
}
