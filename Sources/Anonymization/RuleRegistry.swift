/// Every masking rule by name: the policy validator asks it which rules exist, what
/// column kinds each accepts and what parameters it takes.
public enum RuleRegistry {
    public static let rules: [any MaskingRule.Type] = [Keep.self, Null.self, Constant.self, Hash.self, Fake.self, Mask.self,
                                                       Email.self, Noise.self, Generalize.self, Redact.self, Shuffle.self,
                                                       JSONPaths.self, Elements.self,
                                                       SQLExpression.self]

    public static func type(named name: String) -> (any MaskingRule.Type)? {
        rules.first { $0.name == name }
    }

    /// Builds the rule a policy entry names, or says what is wrong with it at `path`.
    public static func make(_ name: String, parameters: [String: String], path: String) throws(AnonymizationError) -> any MaskingRule {
        guard let type = type(named: name) else {
            throw AnonymizationError("\(path): '\(name)' is not a rule; use one of \(rules.map { $0.name }.joined(separator: ", "))")
        }
        return try type.init(parameters: parameters, path: path)
    }
}
