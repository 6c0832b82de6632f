/// What a security activity entry records (docs/API.md, "Security activity").
public enum ActivityKind: String, Codable, Sendable, CaseIterable {
    case signIn = "sign-in"
    case signInFailed = "sign-in.failed"
    case sessionCreated = "session.created"
    case sessionRevoked = "session.revoked"
    case signOut = "sign-out"
    case passwordChanged = "password.changed"
    case loginBound = "login.bound"
    case recoveryUsed = "recovery.used"
    case keyChanged = "key.changed"
    case inviteCreated = "invite.created"
    case inviteUsed = "invite.used"
    case inviteRevoked = "invite.revoked"
    case linkCreated = "link.created"
    case linkOpened = "link.opened"
    case linkPasswordFailed = "link.password-failed"
    case linkRevoked = "link.revoked"
    case fileDeleted = "file.deleted"
    case destructionRequested = "destruction.requested"
    case destructionFinished = "destruction.finished"
    /// Another admin asked to destroy the whole server: an alert to every other admin, whose
    /// approval it needs.
    case destructionApprovalRequested = "destruction.approval-requested"
    /// A second admin approved the server's destruction (the server's chain).
    case destructionApproved = "destruction.approved"
    /// An admin refused a server destruction that was waiting for approval (the server's chain).
    case destructionCancelled = "destruction.cancelled"
    case adminAction = "admin.action"
    case throttled = "throttled"
    /// The owner said an alert was them ("this was me").
    case alertAcknowledged = "alert.acknowledged"
}
