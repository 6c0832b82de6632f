import Hummingbird
import Logging
import NIOCore

/// The request context of every Circle service.
///
/// `bodyLimit` is set per application by `BodyLimitMiddleware`; Hummingbird's own decoding
/// honours it through `maxUploadSize`.
public struct CircleRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var bodyLimit: Int = 1 << 20

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
    }

    public var maxUploadSize: Int { bodyLimit }
}
