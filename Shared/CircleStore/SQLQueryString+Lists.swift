import SQLKit

extension SQLQueryString {
    /// Appends `values` as bound parameters separated by commas (the inside of `IN (...)`).
    public mutating func appendBinds(_ values: some Sequence<String>) {
        for (index, value) in values.enumerated() { self += index == 0 ? "\(bind: value)" : ", \(bind: value)" }
    }
}
