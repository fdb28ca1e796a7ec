import DatabaseJobs
import Foundation

/// The exports in a store: the shared artefact catalog over export manifests.
public typealias ExportCatalog = ArtefactCatalog<ExportManifest>

extension ExportManifest: ArtefactManifest {
    public static var family: String { "export" }
    public static var root: String { ExportLayout.root }
}
