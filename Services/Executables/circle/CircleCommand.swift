import ArgumentParser

@main
struct CircleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "circle",
        abstract: "Circle: an end-to-end encrypted home for a private community.",
        discussion: "Options can also be set by the environment variables shown in each command's help; the command line wins.",
        subcommands: [ServeCommand.self, MigrateCommand.self, InviteCommand.self],
        defaultSubcommand: nil
    )
}
