import CircleCore
import CircleKit
import CircleTestSupport
import Crypto
import Foundation

/// A file sealed by CircleKit, ready to upload.
package struct SealedFile {
    package let content: [UInt8]
    package let fileKey = SecureRandom.bytes(32)
    package let fileIdBytes = SecureRandom.bytes(16)
    package let stream: [UInt8]
    package let meta: [UInt8]
    package let wrap: [UInt8]
    package var fileId: String { Base64URL.encode(fileIdBytes) }

    package init(size: Int, owner: Member, name: String = "report.pdf") throws {
        content = SecureRandom.bytes(size)
        var sealer = VaultStreamSealer(fileKey: fileKey, size: UInt64(size))
        stream = sealer.header + (try sealer.seal(content)) + (try sealer.finish())
        meta = try VaultMetadata(name: name, type: "application/pdf", size: UInt64(size)).seal(fileKey: fileKey, fileId: fileIdBytes)
        wrap = try VaultKeys.wrap(fileKey: fileKey, owner: owner.id, fileId: fileIdBytes, vaultMasterKey: owner.vaultMasterKey)
    }

    /// tus `Upload-Metadata`: each value the base64 of a text.
    package func metadata(level: String = "private", conversationId: String? = nil, expiresAt: Int64? = nil) -> String {
        var pairs = [("fileId", fileId), ("meta", Base64URL.encode(meta)), ("wrap", Base64URL.encode(wrap)), ("level", level)]
        if let conversationId { pairs.append(("conversationId", conversationId)) }
        if let expiresAt { pairs.append(("expiresAt", String(expiresAt))) }
        return pairs.map { "\($0.0) \(Data($0.1.utf8).base64EncodedString())" }.joined(separator: ",")
    }

    package func open(_ downloaded: [UInt8], by owner: Member, wrap: [UInt8]) throws -> [UInt8] {
        let key = try VaultKeys.unwrap(wrap, owner: owner.id, fileId: fileIdBytes, vaultMasterKey: owner.vaultMasterKey)
        var opener = VaultStreamOpener(fileKey: key, size: UInt64(content.count))
        let plain = try opener.open(downloaded)
        try opener.finish()
        return plain
    }
}

extension Member {
    /// A stand-in vault master key per member (the real one lives in the key bundle).
    package var vaultMasterKey: [UInt8] { Array(SHA256.hash(data: Array("vmk".utf8) + Array(id.utf8))) }
}

/// tus calls.
package struct Tus {
    package init(api: APIClient) { self.api = api }

    package let api: APIClient
    package static let base = "/api/v1/vault/uploads"

    package func create(_ file: SealedFile, as member: Member, length: Int? = nil, metadata: String? = nil, body: [UInt8]? = nil, extra: [String: String] = [:]) async throws -> HTTPProbe.Reply {
        var headers = ["Tus-Resumable": "1.0.0", "Upload-Length": String(length ?? file.stream.count), "Upload-Metadata": metadata ?? file.metadata()]
        if body != nil { headers["Content-Type"] = "application/offset+octet-stream" }
        headers.merge(extra) { _, new in new }
        return try await api.send("POST", Self.base, bytes: body, token: member.token, headers: headers)
    }

    package func patch(_ location: String, offset: Int, _ bytes: [UInt8], as member: Member, checksum: [UInt8]? = nil) async throws -> HTTPProbe.Reply {
        var headers = ["Tus-Resumable": "1.0.0", "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream"]
        if let checksum { headers["Upload-Checksum"] = "sha256 " + Data(checksum).base64EncodedString() }
        return try await api.send("PATCH", location, bytes: bytes, token: member.token, headers: headers)
    }

    package func head(_ location: String, as member: Member) async throws -> HTTPProbe.Reply {
        try await api.send("HEAD", location, bytes: nil, token: member.token, headers: ["Tus-Resumable": "1.0.0"])
    }

    /// Uploads the whole file in pieces; returns the file id.
    package func upload(_ file: SealedFile, as member: Member, piece: Int = 100_000, metadata: String? = nil) async throws {
        let created = try await create(file, as: member, metadata: metadata)
        guard created.status == 201, let location = created.headers["location"] else { throw TestSupportError("create: \(created.status) \(created.body)") }
        var offset = 0
        while offset < file.stream.count {
            let end = min(file.stream.count, offset + piece)
            let reply = try await patch(location, offset: offset, Array(file.stream[offset..<end]), as: member)
            guard reply.status == 204, reply.headers["upload-offset"] == String(end) else { throw TestSupportError("patch: \(reply.status) \(reply.body)") }
            offset = end
        }
    }
}


/// A share link made as the owner's client makes it.
package enum TestLink {
    package static func make(for file: SealedFile, by owner: Member, password: String?, maxDownloads: Int = 0, on api: APIClient) async throws -> (id: String, key: [UInt8], salt: [UInt8]?) {
        let linkId = SecureRandom.bytes(16), linkKey = SecureRandom.bytes(32)
        let salt = password == nil ? nil : SecureRandom.bytes(16)
        let secrets = try VaultKeys.linkSecrets(linkKey: linkKey, password: password, salt: salt)
        var body: [String: Any] = ["linkId": Base64URL.encode(linkId), "verifier": Base64URL.encode(secrets.verifier),
                                   "wrap": Base64URL.encode(try VaultKeys.wrapForLink(fileKey: file.fileKey, linkId: linkId, secrets: secrets)),
                                   "maxDownloads": maxDownloads]
        if let salt { body["salt"] = Base64URL.encode(salt); body["iterations"] = VaultKeys.linkIterations }
        let reply = try await api.call("POST", "/api/v1/vault/files/\(file.fileId)/links", json: Wire.json(body), token: owner.token)
        guard reply.status == 201 else { throw TestSupportError("link: \(reply.status) \(reply.body)") }
        return (Base64URL.encode(linkId), linkKey, salt)
    }
}
