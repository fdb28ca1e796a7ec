import Foundation

/// Where every artefact family keeps its objects: `<root>/<database>/<UTC time>-<job id>/`,
/// the data objects and `manifest.json`, written last.
public enum ArtefactLayout {
    public static let manifestName = "manifest.json"
    /// Where exports live (`exports/<database>/<id>/`): retention sweeps the ones a killed
    /// export left without a manifest.
    public static let exportsRoot = "exports"
    /// Where snapshots live (`snapshots/<database>/<id>/`).
    public static let snapshotsRoot = "snapshots"
    /// No export or snapshot runs longer than this (their timeout is 6 h): a folder of
    /// theirs without a manifest older than this is garbage, whatever the grace.
    public static let exportMaximumSeconds: Double = 7 * 3600

    /// `20261122T030000Z-<job id>`: sorts by time in a listing, but retention never
    /// trusts it: it reads the manifest's times.
    public static func id(startedAt: Date, jobID: String) -> String {
        let c = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: startedAt)
        let stamp = String(format: "%04d%02d%02dT%02d%02d%02dZ", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
        return "\(stamp)-\(jobID)"
    }
}
