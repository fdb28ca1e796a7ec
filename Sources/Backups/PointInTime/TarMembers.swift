/// Reads a tar stream as it passes and keeps the members it is asked for (a base backup's
/// `backup_label` and `backup_manifest`), without holding anything else: headers are 512
/// bytes, data is padded to 512, two zero blocks end the archive.
final class TarMembers: @unchecked Sendable {
    // @unchecked Sendable: fed from one lane, one chunk at a time; read after the stream ends.
    private let wanted: Set<String>
    private let limit: Int
    private(set) var members: [String: [UInt8]] = [:]
    private(set) var malformed = false
    private var header: [UInt8] = []
    private var remaining = 0       // data bytes of the current member still to come
    private var padding = 0         // padding bytes after it
    private var capturing: String?

    init(wanted: Set<String>, limit: Int = 256 << 20) {
        self.wanted = wanted
        self.limit = limit
    }

    func feed(_ chunk: UnsafeRawBufferPointer) {
        var i = 0
        while i < chunk.count && !malformed {
            if remaining > 0 {
                let n = min(remaining, chunk.count - i)
                if let name = capturing { members[name, default: []].append(contentsOf: chunk[i..<i + n]) }
                remaining -= n
                i += n
                if remaining == 0 { capturing = nil }
            } else if padding > 0 {
                let n = min(padding, chunk.count - i)
                padding -= n
                i += n
            } else {
                let n = min(512 - header.count, chunk.count - i)
                header.append(contentsOf: chunk[i..<i + n])
                i += n
                if header.count == 512 { startMember() }
            }
        }
    }

    private func startMember() {
        defer { header.removeAll(keepingCapacity: true) }
        if header.allSatisfy({ $0 == 0 }) { return }
        func field(_ range: Range<Int>) -> String {
            String(decoding: header[range].prefix { $0 != 0 }, as: UTF8.self)
        }
        var name = field(0..<100)
        let prefix = field(345..<500)
        if !prefix.isEmpty && field(257..<263).hasPrefix("ustar") { name = prefix + "/" + name }
        let sizeText = field(124..<136).trimmingCharacters(in: " ")
        guard let size = Int(sizeText, radix: 8) else { malformed = true; return }
        remaining = size
        padding = (512 - size % 512) % 512
        if size > 0, wanted.contains(name), size <= limit {
            capturing = name
            members[name] = []
        } else if size == 0 {
            if wanted.contains(name) { members[name] = [] }
        }
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return String(s)
    }
}
