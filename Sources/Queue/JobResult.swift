/// A job's result as a typed value: what `Job.run` returns goes to the queue as JSON
/// (keys sorted), so a result struct and the JSON a listing or the dashboard reads are
/// one and the same. Fields that are nil are left out, unless marked `@ExplicitNull`.
public protocol JobResult: Encodable, Sendable {}

extension JobResult {
    /// The result as the queue stores it.
    public var json: JSONValue {
        get throws { try JSONValue(encoding: self) }
    }
}

/// An optional field that a result writes as `null` when it has no value (rather than
/// leaving the key out): for keys a reader expects to find.
@propertyWrapper
public struct ExplicitNull<Value: Encodable & Sendable>: Encodable, Sendable {
    public var wrappedValue: Value?
    public init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}

extension JSONValue: JobResult {}
