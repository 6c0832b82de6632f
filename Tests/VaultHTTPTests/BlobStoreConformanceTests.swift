import CircleConfig
import CircleCore
import CircleObjectStore
import CircleServerTestSupport
import CircleTestSupport
import CleanupCore
import Crypto
import Foundation
import Hummingbird
import Logging
import NIOCore
import Testing
import VaultStore

/// AWS's published SigV4 examples for S3 ("Signature Calculations for the Authorization Header:
/// Transferring Payload in a Single Chunk"): credentials, date and bucket as documented there.
@Suite("SigV4 signing against AWS's examples")
struct SigV4Tests {
    let signer = SigV4Signer(accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", region: "us-east-1")
    let date = Date(timeIntervalSince1970: 1_369_353_600)  // 2013-05-24T00:00:00Z
    let host = ("host", "examplebucket.s3.amazonaws.com")
    let stamp = ("x-amz-date", "20130524T000000Z")
    let empty = SigV4Signer.emptyPayloadHash

    func signature(_ authorization: String) -> String { String(authorization.split(separator: "=").last!) }

    @Test("GET Object with a Range header")
    func getObject() {
        let value = signer.authorization(method: "GET", path: "/test.txt", query: [],
                                         headers: [host, ("Range", "bytes=0-9"), ("x-amz-content-sha256", empty), stamp], payloadHash: empty, date: date)
        #expect(value == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    @Test("PUT Object: a key that needs encoding, a signed payload, an extra header")
    func putObject() {
        let payload = SigV4Signer.hex(SHA256.hash(data: Data("Welcome to Amazon S3.".utf8)))
        #expect(payload == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let value = signer.authorization(method: "PUT", path: "/test$file.text", query: [],
                                         headers: [("Date", "Fri, 24 May 2013 00:00:00 GMT"), host, ("x-amz-content-sha256", payload), stamp,
                                                   ("x-amz-storage-class", "REDUCED_REDUNDANCY")], payloadHash: payload, date: date)
        #expect(value.contains("SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"))
        #expect(signature(value) == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    @Test("GET Bucket Lifecycle (a query parameter with no value) and List Objects (query sorted)")
    func bucketRequests() {
        let headers = [host, ("x-amz-content-sha256", empty), stamp]
        let lifecycle = signer.authorization(method: "GET", path: "/", query: [("lifecycle", "")], headers: headers, payloadHash: empty, date: date)
        #expect(signature(lifecycle) == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
        let list = signer.authorization(method: "GET", path: "/", query: [("prefix", "J"), ("max-keys", "2")], headers: headers, payloadHash: empty, date: date)
        #expect(signature(list) == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    @Test("a different secret, day or key gives a different signature")
    func bound() {
        let headers = [host, ("x-amz-content-sha256", empty), stamp]
        let base = signer.authorization(method: "GET", path: "/a", query: [], headers: headers, payloadHash: empty, date: date)
        let other = SigV4Signer(accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: "another", region: "us-east-1")
        #expect(other.authorization(method: "GET", path: "/a", query: [], headers: headers, payloadHash: empty, date: date) != base)
        #expect(signer.authorization(method: "GET", path: "/b", query: [], headers: headers, payloadHash: empty, date: date) != base)
        #expect(signer.authorization(method: "GET", path: "/a", query: [], headers: headers, payloadHash: empty, date: date + 86_400) != base)
    }
}

/// Which blob store a conformance test runs on.
enum StoreKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case folder, s3
    var testDescription: String { rawValue }

    static var available: [StoreKind] { TestServers.s3Enabled ? [.folder, .s3] : [.folder] }

    /// S3 parts of 5 MiB, the least S3 takes, so tests cross part boundaries with small files.
    static let partSize = 5 << 20

    /// A fresh, empty store; a second call with the same `place` is another replica of it.
    func open(_ place: String) async throws -> any BlobStore {
        switch self {
        case .folder:
            return try FileBlobStore(root: FileManager.default.temporaryDirectory.appendingPathComponent("blobs-\(place)").path)
        case .s3:
            let url = try #require(TestServers.s3URL, "CIRCLE_TEST_S3_URL is not set (run `make test`)")
            let store = try S3BlobStore(location: S3Location(endpoint: url, bucket: "blobs-\(place)", region: "us-east-1",
                                                             accessKey: TestServers.s3AccessKey, secretKey: TestServers.s3SecretKey), partSize: Self.partSize)
            do {
                if try await !store.client.bucketExists() { try await store.client.createBucket() }
            } catch {
                try? await store.client.shutdown()
                throw error
            }
            return store
        }
    }

    static func close(_ store: any BlobStore) async throws {
        if let s3 = store as? S3BlobStore { try await s3.client.shutdown() }
    }

    /// Runs `body` with `count` replicas of a fresh store, closed afterwards whatever happens.
    func with(replicas count: Int = 1, _ body: ([any BlobStore]) async throws -> Void) async throws {
        let place = TestServers.randomSuffix()
        var stores: [any BlobStore] = []
        do {
            for _ in 0..<count { stores.append(try await open(place)) }
            try await body(stores)
        } catch {
            for store in stores { try? await Self.close(store) }
            throw error
        }
        for store in stores { try await Self.close(store) }
    }
}

/// Runs `body` with a client of `bucket` on the test's S3 server, shut down afterwards whatever happens.
func withS3Client(bucket: String, secretKey: String = TestServers.s3SecretKey, _ body: (S3Client) async throws -> Void) async throws {
    let url = try #require(TestServers.s3URL, "CIRCLE_TEST_S3_URL is not set (run `make test`)")
    let client = try S3Client(location: S3Location(endpoint: url, bucket: bucket, region: "us-east-1", accessKey: TestServers.s3AccessKey, secretKey: secretKey))
    do {
        try await body(client)
    } catch {
        try? await client.shutdown()
        throw error
    }
    try await client.shutdown()
}

/// The body of a request: fixed pieces, optionally failing after them like a broken connection.
struct Pieces: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let pieces: [[UInt8]]
    var breaksAfter = false

    struct Broken: Error {}

    struct AsyncIterator: AsyncIteratorProtocol {
        var index = 0
        let body: Pieces
        mutating func next() async throws -> ByteBuffer? {
            guard index < body.pieces.count else {
                if body.breaksAfter { throw Broken() }
                return nil
            }
            defer { index += 1 }
            return ByteBuffer(bytes: body.pieces[index])
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(body: self) }

    /// `bytes` cut into pieces of `size` (the last shorter), as a socket delivers them.
    static func of(_ bytes: ArraySlice<UInt8>, size: Int = 300_000, breaking: Bool = false) -> Pieces {
        Pieces(pieces: stride(from: bytes.startIndex, to: bytes.endIndex, by: size).map { Array(bytes[$0..<Swift.min($0 + size, bytes.endIndex)]) }, breaksAfter: breaking)
    }
}

@Suite("Blob store conformance: the folder and S3-compatible storage")
struct BlobStoreConformanceTests {
    func name() -> String { Hex.encode(SecureRandom.bytes(16)) }

    func read(_ store: any BlobStore, _ file: String, _ range: ClosedRange<Int64>? = nil) async throws -> [UInt8] {
        let body = try await store.read(file: file, range: range, context: ReadContext(source: ReadSource(logger: TestServers.quietLogger)))
        let collector = Collector()
        try await body.write(collector)
        return await collector.bytes
    }

    func append(_ store: any BlobStore, _ id: String, at offset: Int, total: Int, _ body: Pieces) async throws -> AppendResult {
        var hashing = UploadHashing(whole: nil, request: SHA256())
        return try await store.append(upload: id, at: Int64(offset), limit: Int64(total - offset), body: body, hashing: &hashing)
    }

    @Test("an upload in uneven requests, across part boundaries and two replicas, becomes the file: whole, by range, hashed, deleted idempotently",
          arguments: StoreKind.available)
    func uploadAcrossReplicas(kind: StoreKind) async throws {
        try await kind.with(replicas: 2) { stores in
            let (first, second) = (stores[0], stores[1])
            let bytes = SecureRandom.bytes(12 * 1_048_576 + 12_345)
            let (id, file) = (name(), name())
            try await first.createUpload(id, file: file)
            // 3 MiB (inside part 1), then 6.5 MiB on the other replica (crossing into part 2), then the rest.
            let cuts = [0, 3 << 20, (3 << 20) + (13 << 19), bytes.count]
            for step in 0..<3 {
                let store = step == 1 ? second : first
                let result = try await append(store, id, at: cuts[step], total: bytes.count, Pieces.of(bytes[cuts[step]..<cuts[step + 1]], size: 700_001))
                #expect(result.failure == nil && result.written == Int64(cuts[step + 1] - cuts[step]))
        }
        try await second.promote(upload: id, toFile: file, length: Int64(bytes.count))
        try await second.promote(upload: id, toFile: file, length: Int64(bytes.count))  // a retry after a crash
        try await first.deleteUpload(id)
        #expect(try await read(first, file) == bytes)
        #expect(try await read(second, file, 5_000_000...5_300_000) == Array(bytes[5_000_000...5_300_000]))
        #expect(try await read(first, file, Int64(bytes.count - 10)...Int64(bytes.count - 1)) == Array(bytes.suffix(10)))
        #expect(try await first.hashFile(file) == Array(SHA256.hash(data: bytes)))
        try await first.deleteFile(file)
        try await second.deleteFile(file)
        await #expect(throws: (any Error).self) { _ = try await read(first, file) }
        try await first.deleteUpload(id)
        if let s3 = first as? S3BlobStore {
            #expect(try await s3.client.list(prefix: "").isEmpty, "nothing of the upload or the file is left")
            #expect(try await s3.client.listMultipartUploads(prefix: "").isEmpty)
        }
        }
    }

    @Test("a broken connection keeps what arrived; a failed checksum cuts back to the request's start; the upload then finishes with the right bytes",
          arguments: StoreKind.available)
    func brokenAndCutBack(kind: StoreKind) async throws {
        try await kind.with { stores in
            let store = stores[0]
            let bytes = SecureRandom.bytes(11 * 1_048_576)
            let (id, file) = (name(), name())
            try await store.createUpload(id, file: file)
            // 2 MiB arrive, then the connection breaks: they are kept.
            let broken = try await append(store, id, at: 0, total: bytes.count, Pieces.of(bytes[0..<(2 << 20)], breaking: true))
            #expect(broken.failure is Pieces.Broken && broken.written == 2 << 20)
            // The next request carries 7 MiB of wrong bytes (past the first part) and fails its checksum.
            let wrong = SecureRandom.bytes(7 << 20)
            let bad = try await append(store, id, at: 2 << 20, total: bytes.count, Pieces.of(wrong[...]))
            #expect(bad.failure == nil && bad.written == 7 << 20)
            try await store.truncateUpload(id, to: 2 << 20)
            // Resumed from 2 MiB with the right bytes, to the end.
            let rest = try await append(store, id, at: 2 << 20, total: bytes.count, Pieces.of(bytes[(2 << 20)...]))
            #expect(rest.failure == nil && rest.written == Int64(bytes.count - (2 << 20)))
            try await store.promote(upload: id, toFile: file, length: Int64(bytes.count))
            try await store.deleteUpload(id)
            #expect(try await store.hashFile(file) == Array(SHA256.hash(data: bytes)))
            #expect(try await read(store, file) == bytes)
            try await store.deleteFile(file)
        }
    }

    @Test("a body past the upload's length stops with BodyTooLong; an empty file and a cancelled upload leave nothing behind", arguments: StoreKind.available)
    func limitsAndEmpty(kind: StoreKind) async throws {
        try await kind.with { stores in
            let store = stores[0]
            let (id, file) = (name(), name())
            try await store.createUpload(id, file: file)
            let long = try await append(store, id, at: 0, total: 1000, Pieces.of(SecureRandom.bytes(1500)[...], size: 600))
            #expect(long.failure is BodyTooLong)
            try await store.deleteUpload(id)
            try await store.deleteUpload(id)

            let (emptyId, emptyFile) = (name(), name())
            try await store.createUpload(emptyId, file: emptyFile)
            try await store.promote(upload: emptyId, toFile: emptyFile, length: 0)
            try await store.deleteUpload(emptyId)
            #expect(try await read(store, emptyFile).isEmpty)
            #expect(try await store.hashFile(emptyFile) == Array(SHA256.hash(data: [UInt8]())))
            try await store.deleteFile(emptyFile)
            if let s3 = store as? S3BlobStore {
                #expect(try await s3.client.list(prefix: "").isEmpty)
                #expect(try await s3.client.listMultipartUploads(prefix: "").isEmpty)
        }
        }
    }

    @Test("an upload not yet complete cannot be promoted; its file does not exist before", arguments: StoreKind.available)
    func incomplete(kind: StoreKind) async throws {
        try await kind.with { stores in
            let store = stores[0]
            let bytes = SecureRandom.bytes(6 << 20)
            let (id, file) = (name(), name())
            try await store.createUpload(id, file: file)
            _ = try await append(store, id, at: 0, total: bytes.count, Pieces.of(bytes[0..<(1 << 20)]))
            await #expect(throws: (any Error).self) { _ = try await read(store, file) }
            if kind == .s3 {
                await #expect(throws: (any Error).self) { try await store.promote(upload: id, toFile: file, length: Int64(bytes.count)) }
        }
        try await store.deleteUpload(id)
        }
    }
}

@Suite("The S3 store after a crash halfway through creating an upload", .enabled(if: TestServers.s3Enabled, TestServers.s3SkipReason))
struct S3HalfCreatedUploadTests {
    @Test("an upload whose record names only its file (S3 never answered with the multipart id) is aborted by its key when deleted")
    func halfCreated() async throws {
        try await StoreKind.s3.with { stores in
            let store = try #require(stores[0] as? S3BlobStore)
            let (id, file) = (Hex.encode(SecureRandom.bytes(16)), Hex.encode(SecureRandom.bytes(16)))
            // What createUpload leaves when it stops after asking S3 for the multipart upload.
            try await store.client.putObject("upload.\(id)", body: ByteBuffer(string: "\(file)\n"))
            _ = try await store.client.createMultipartUpload(store.fileKey(file))
            #expect(try await store.client.listMultipartUploads(prefix: "").count == 1)
            var hashing = UploadHashing(whole: nil, request: nil)
            await #expect(throws: S3Error.self) {
                _ = try await store.append(upload: id, at: 0, limit: 10, body: Pieces(pieces: [SecureRandom.bytes(10)]), hashing: &hashing)
            }
            try await store.deleteUpload(id)
            #expect(try await store.client.listMultipartUploads(prefix: "").isEmpty)
            #expect(try await store.client.list(prefix: "").isEmpty)
        }
    }
}

/// A request context for reading outside a server (the stores use only its logger and allocator).
struct ReadSource: RequestContextSource {
    let logger: Logger
}

struct ReadContext: RequestContext {
    typealias Source = ReadSource
    var coreContext: CoreRequestContextStorage
    init(source: ReadSource) { coreContext = .init(source: source) }
}

/// Collects a response body.
actor Collector: ResponseBodyWriter {
    var bytes: [UInt8] = []
    func write(_ buffer: ByteBuffer) async throws { bytes += buffer.readableBytesView }
    func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

@Suite("The vault and cleanup on S3-compatible storage", .enabled(if: TestServers.s3Enabled, TestServers.s3SkipReason))
struct VaultOnS3Tests {
    @Test("a file uploads in pieces, downloads whole and by range, is deleted, and cleanup's sweep removes an expired one from the bucket", arguments: Engine.available)
    func endToEnd(engine: Engine) async throws {
        let url = try #require(TestServers.s3URL)
        let bucket = "vault-\(TestServers.randomSuffix())"
        let settings = VaultS3Settings(endpoint: url, bucket: bucket, accessKey: TestServers.s3AccessKey, secretKey: TestServers.s3SecretKey)
        try await withS3Client(bucket: bucket) { probe in
            try await probe.createBucket()
            let extra: [CircleConfigKey: String] = [.vaultS3Endpoint: url, .vaultS3Bucket: bucket, .vaultS3AccessKey: TestServers.s3AccessKey, .vaultS3SecretKey: TestServers.s3SecretKey]
            try await ServerHarness(engine, extra: extra).run { api, store in
                let ann = try await Member.register("ann", on: api)
                let tus = Tus(api: api)
                let file = try SealedFile(size: 6_000_000, owner: ann)
                try await tus.upload(file, as: ann, piece: 1_000_000)
                let download = try await api.send("GET", "/api/v1/vault/files/\(file.fileId)/content", bytes: nil, token: ann.token)
                #expect(download.status == 200 && download.bytes == file.stream)
                let part = try await api.send("GET", "/api/v1/vault/files/\(file.fileId)/content", bytes: nil, token: ann.token, headers: ["Range": "bytes=5242000-5243000"])
                #expect(part.status == 206 && part.bytes == Array(file.stream[5_242_000...5_243_000]))
                let list = try await api.call("GET", "/api/v1/vault/files", token: ann.token)
                let files = try #require(TestJSON.value(list.body, path: ["files"]) as? [[String: Any]])
                #expect(files.first?["sha256"] as? String == Base64URL.encode(Array(SHA256.hash(data: file.stream))))
                #expect(try await probe.list(prefix: "").filter { $0.key.hasPrefix("files/") }.count == 1)
                #expect(try await api.call("DELETE", "/api/v1/vault/files/\(file.fileId)", token: ann.token).status == 204)
                #expect(try await probe.list(prefix: "").isEmpty, "the file's object is gone with it")

                let expiring = try SealedFile(size: 3000, owner: ann)
                try await tus.upload(expiring, as: ann, metadata: expiring.metadata(expiresAt: Timestamp.now().millis + 60_000))
                #expect(try await probe.list(prefix: "").filter { $0.key.hasPrefix("files/") }.count == 1)
                let blobs = try await VaultBlobs.open(VaultSettings(s3: settings))
                let later = FixedClock(Timestamp(millis: Timestamp.now().millis + 2 * 86_400_000))
                let swept = try? await VaultSweeper(store: store, blobs: blobs, clock: later, logger: TestServers.quietLogger).sweep()
                try await StoreKind.close(blobs)
                #expect(swept?.files == 1)
                #expect(try await probe.list(prefix: "").isEmpty)
            }
        }
    }

    @Test("the store checks every signature: a wrong secret is refused, so the vault does not start")
    func wrongSecret() async throws {
        let url = try #require(TestServers.s3URL)
        let bucket = "vault-\(TestServers.randomSuffix())"
        try await withS3Client(bucket: bucket) { try await $0.createBucket() }
        let settings = VaultSettings(s3: VaultS3Settings(endpoint: url, bucket: bucket, accessKey: TestServers.s3AccessKey, secretKey: "not-the-secret"))
        await #expect { _ = try await VaultBlobs.open(settings) } throws: { error in
            guard let error = error as? S3Error else { return false }
            return error.status == 403
        }
    }

    @Test("a bucket that does not exist stops the vault at start with the store's answer")
    func missingBucket() async throws {
        let url = try #require(TestServers.s3URL)
        let settings = VaultSettings(s3: VaultS3Settings(endpoint: url, bucket: "none-\(TestServers.randomSuffix())", accessKey: TestServers.s3AccessKey, secretKey: TestServers.s3SecretKey))
        await #expect { _ = try await VaultBlobs.open(settings) } throws: { error in
            (error as? S3Error)?.code == "NoSuchBucket"
        }
    }
}

@Suite("Blobs no row names are swept (a crash between storage and the database)")
struct OrphanBlobTests {
    @Test("an unnamed file and upload older than the grace go; files, unfinished uploads with rows and recent blobs stay", arguments: StoreKind.available)
    func orphans(kind: StoreKind) async throws {
        var extra: [CircleConfigKey: String] = [:]
        var settings = VaultSettings()
        let bucket = "orphans-\(TestServers.randomSuffix())"
        if kind == .s3 {
            let url = try #require(TestServers.s3URL)
            try await withS3Client(bucket: bucket) { try await $0.createBucket() }
            extra = [.vaultS3Endpoint: url, .vaultS3Bucket: bucket, .vaultS3AccessKey: TestServers.s3AccessKey, .vaultS3SecretKey: TestServers.s3SecretKey]
            settings.s3 = VaultS3Settings(endpoint: url, bucket: bucket, accessKey: TestServers.s3AccessKey, secretKey: TestServers.s3SecretKey)
        }
        let harness = ServerHarness(.sqlite, extra: extra)
        settings.path = harness.vaultPath
        let configured = settings
        try await harness.run { api, store in
            let blobs = try await VaultBlobs.open(configured)
            do {
                let ann = try await Member.register("ann", on: api)
                let tus = Tus(api: api)
                let kept = try SealedFile(size: 2000, owner: ann)
                try await tus.upload(kept, as: ann)
                let unfinished = try SealedFile(size: 4000, owner: ann)
                let location = try #require(try await tus.create(unfinished, as: ann).headers["location"])
                #expect(try await tus.patch(location, offset: 0, Array(unfinished.stream[0..<1000]), as: ann).status == 204)
                // What a crash leaves: a whole file no row names, and an upload with no row.
                let (orphanUpload, orphanFile) = (Hex.encode(SecureRandom.bytes(16)), Hex.encode(SecureRandom.bytes(16)))
                for (id, file, finish) in [(Hex.encode(SecureRandom.bytes(16)), orphanFile, true), (orphanUpload, Hex.encode(SecureRandom.bytes(16)), false)] {
                    try await blobs.createUpload(id, file: file)
                    var hashing = UploadHashing(whole: nil, request: nil)
                    _ = try await blobs.append(upload: id, at: 0, limit: 100, body: Pieces(pieces: [SecureRandom.bytes(100)]), hashing: &hashing)
                    if finish {
                        try await blobs.promote(upload: id, toFile: file, length: 100)
                        try await blobs.deleteUpload(id)
                    }
                }
                let names = { try await blobs.listBlobs().map(\.name) }
                #expect(Set(try await names()).isSuperset(of: [orphanFile, orphanUpload, Hex.encode(kept.fileIdBytes)]))
                // Recent: nothing goes.
                let recent = try await VaultExpiry.deleteOrphanBlobs(store: store, blobs: blobs, now: Date(), grace: 86_400)
                #expect(recent.files == 0 && recent.uploads == 0)
                // A day later: the two orphans go, nothing else.
                let later = try await VaultExpiry.deleteOrphanBlobs(store: store, blobs: blobs, now: Date() + 2 * 86_400, grace: 86_400)
                #expect(later.files == 1 && later.uploads == 1)
                let left = Set(try await names())
                #expect(!left.contains(orphanFile) && !left.contains(orphanUpload))
                #expect(left.contains(Hex.encode(kept.fileIdBytes)) && left.contains(String(location.split(separator: "/").last!)))
                let download = try await api.send("GET", "/api/v1/vault/files/\(kept.fileId)/content", bytes: nil, token: ann.token)
                #expect(download.status == 200 && download.bytes == kept.stream)
                #expect(try await tus.patch(location, offset: 1000, Array(unfinished.stream[1000...]), as: ann).status == 204, "the unfinished upload still finishes")
            } catch {
                try? await StoreKind.close(blobs)
                throw error
            }
            try await StoreKind.close(blobs)
        }
    }
}
