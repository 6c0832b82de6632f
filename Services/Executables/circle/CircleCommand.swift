import ArgumentParser

@main
struct CircleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "circle",
        abstract: "Circle: an end-to-end encrypted home for a private community.",
        discussion: "Server commands: serve, migrate, invite, audit, security, destroy. Client commands (against any server URL): register, login, logout, chat, vault, status, activity, safety-number, verify. Options can also be set by the environment variables shown in each command's help; the command line wins.",
        subcommands: [
            ServeCommand.self, MigrateCommand.self, InviteCommand.self, AuditCommand.self, SecurityCommand.self, DestroyCommand.self,
            RegisterCommand.self, LoginCommand.self, LogoutCommand.self, ChatCommand.self, VaultCommand.self, StatusCommand.self, ActivityCommand.self,
            SafetyNumberCommand.self, VerifyCommand.self,
        ],
        defaultSubcommand: nil
    )
}
