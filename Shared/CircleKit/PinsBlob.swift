import CircleCore
import CircleProtocol
import Crypto
import Foundation

/// The pins and verified marks as the server keeps them (PROTOCOL 5.1):
/// `AES-GCM(HKDF(vmk, "circle/v1/pins"), JSON(pins), aad = "circle/v1/pins" || userId || u64(version))`,
/// so the server can neither read them nor serve one user's or one version's blob as another.
public enum PinsBlob {
    static let label = Array("circle/v1/pins".utf8)

    static func key(_ vaultMasterKey: [UInt8]) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: vaultMasterKey), info: label, outputByteCount: 32)
    }

    static func aad(userId: String, version: Int64) -> [UInt8] {
        var writer = ByteWriter()
        writer.u64(UInt64(version))
        return label + Array(userId.utf8) + writer.bytes
    }

    public static func seal(_ pins: [String: DeviceState.Pin], userId: String, version: Int64, vaultMasterKey: [UInt8]) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let box = try AES.GCM.seal(try encoder.encode(pins), using: key(vaultMasterKey), authenticating: aad(userId: userId, version: version))
        return Array(box.combined!)
    }

    public static func open(_ blob: [UInt8], userId: String, version: Int64, vaultMasterKey: [UInt8]) throws -> [String: DeviceState.Pin] {
        let plaintext: Data
        do {
            plaintext = try AES.GCM.open(try AES.GCM.SealedBox(combined: blob), using: key(vaultMasterKey), authenticating: aad(userId: userId, version: version))
        } catch {
            throw ProtocolError.decryptionFailed
        }
        return try JSONDecoder().decode([String: DeviceState.Pin].self, from: plaintext)
    }

    /// Merges pins from another device: new contacts are taken; the same key keeps the stronger
    /// mark; a different key is never taken silently: it becomes a pending change the user must
    /// acknowledge (sending to that contact is blocked until then).
    static func merge(_ local: [String: DeviceState.Pin], _ remote: [String: DeviceState.Pin]) -> [String: DeviceState.Pin] {
        var merged = local
        for (userId, theirs) in remote {
            guard var mine = merged[userId] else {
                merged[userId] = theirs
                continue
            }
            if mine.identityKey == theirs.identityKey {
                mine.verified = mine.verified || theirs.verified
            } else if mine.pendingChange == nil {
                mine.pendingChange = theirs.identityKey
            }
            merged[userId] = mine
        }
        return merged
    }
}

extension ChatClient {
    struct RemotePins: Codable, Sendable { let version: Int64; let blob: String? }
    struct PutPins: Codable, Sendable { let version: Int64; let blob: String }

    /// The newest pins version this device has seen (it refuses older ones).
    public var pinsVersion: Int64 { state.pinsVersion }

    /// Brings this device's pins and the server's blob together: takes what other devices pinned
    /// and writes back what this one added, retrying when another device wrote in between.
    public func syncPins() async throws {
        try requireSession()
        for _ in 0..<4 {
            let remote: RemotePins = try await api.call(.GET, "/api/v1/account/pins")
            // Versions only grow: an older blob than this device has seen is the server rolling
            // the pins back (to a key before a change, or before a verification).
            guard remote.version >= state.pinsVersion else { throw PinsRollback(served: remote.version, seen: state.pinsVersion) }
            var theirs: [String: DeviceState.Pin] = [:]
            if let blob = remote.blob {
                theirs = try PinsBlob.open(try Base64URL.bytes(blob, "pins"), userId: state.userId, version: remote.version, vaultMasterKey: state.vaultMasterKey.bytes)
            }
            let merged = PinsBlob.merge(state.pins, theirs)
            state.pins = merged
            state.pinsVersion = remote.version
            try save()
            guard merged != theirs else { return }
            let next = remote.version + 1
            let sealed = try PinsBlob.seal(merged, userId: state.userId, version: next, vaultMasterKey: state.vaultMasterKey.bytes)
            do {
                try await api.send(.PUT, "/api/v1/account/pins", body: PutPins(version: next, blob: Base64URL.encode(sealed)))
                state.pinsVersion = next
                try save()
                return
            } catch let error as CircleAPIError where error.slug == "version-conflict" {
                continue
            }
        }
        throw ProtocolError.refused("the pins kept changing on another device; try again")
    }
}

/// The server served an older pins blob than this device has seen; it was not used.
public struct PinsRollback: Error, CustomStringConvertible, Equatable {
    public let served: Int64
    public let seen: Int64

    public init(served: Int64, seen: Int64) {
        self.served = served
        self.seen = seen
    }

    public var description: String {
        "the server sent pins version \(served), older than version \(seen) this device has seen: refused (the server, or someone who controls it, tried to roll back your pinned keys or verifications)"
    }
}
