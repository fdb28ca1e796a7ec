import DatabaseJobs
import Foundation

/// Thresholds with some values replaced by name (`deadRatio: 0.2` from dbq.yaml);
/// unknown names are ignored here (the CLI refuses them when it reads the file).
func overridden<T: Codable>(_ defaults: T, _ overrides: [String: Double]?) -> T {
    guard let overrides, !overrides.isEmpty,
          let data = try? JSONEncoder().encode(defaults),
          var object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return defaults }
    for (key, value) in overrides where object[key] != nil {
        object[key] = object[key] is Int ? Int(value) as Any : value as Any
    }
    guard let merged = try? JSONSerialization.data(withJSONObject: object), let result = try? JSONDecoder().decode(T.self, from: merged) else { return defaults }
    return result
}
