import ArgumentParser

/// The help of the arguments that take an id: ids are base64url, and one that starts with "-"
/// would be taken for an option unless it comes after "--" (ids CircleKit makes never do).
enum IdHelp {
    static let conversation = ArgumentHelp(
        "The conversation's id, or enough of its start to name one (an id that starts with \"-\" goes after \"--\", with the options before it).")
    static let file = ArgumentHelp(
        "The file's id (an id that starts with \"-\" goes after \"--\", with the options before it).")
}
