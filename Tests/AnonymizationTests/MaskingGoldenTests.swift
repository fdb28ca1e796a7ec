@testable import Anonymization
import Testing

/// The masking rules' outputs, pinned: an export masked today must join with one masked
/// last month under the same key, so no rewrite of a rule may change a single byte.
@Suite("Masking rules: outputs pinned by golden digests (3,000 seeded inputs per rule)")
struct MaskingGoldenTests {
    static let expected: [String: String] = [
        "hash-text": "53393e95c911889928bb9f8a0aa4d75dc7b9c8c96e75f3d27e2198ce08732be1",
        "hash-short-prefix": "69c334f04050bad8e4ad8774f613b68910afc86f41374f4808b7dcb7fef52707",
        "hash-digits": "cb2ec8d6c21f2aab80eea3a00b88db0ac3ed82aacc23c991c2ef64f82aedd694",
        "hash-integer": "a3ca37015922fdff090965ce1d996eb61739bd6935a8ae810b75367d19cce9e4",
        "hash-uuid": "fa9280112ae489a55e84d13f59367412c2039133f11b2542bdc8e7e7d7f7b5ae",
        "email": "84178de5ae09d3e77e193d1e1fbb5d70954b5404f1960058a1118c4a6159a276",
        "email-keep-52": "e272107f3223375f26b907f04b67472871111427b5096f0d09f9f011fcd6bb24",
        "redact": "4bf2023221f82a204c22131642fe5b2670ad4e9c90caa2044bd1f2804979e303",
        "redact-keep-52": "0cd20391fb35cf6d7c86deff890067da65a3c201133e25388abb638ab1ea1089",
        "mask": "0dc3cdc9597fe771b49c86f2760e1d7796b4fe7312b236dbb88bd7ff60006d5c",
        "constant": "609c980c39b05937bb2cddc5d63b7c7088d4b1d2ec46d614f28fe7a58e5cd787",
        "noise-int": "572b4dee03b98b5c559c166ab90a96abd7d474fe39d0b8244c4e8a6a15965ba7",
        "noise-date": "d69a8f52756e69d3ad04d47c3b36fc11d191783cb8c0867c860246d73c9ef9ad",
        "generalize-year": "9e5b3258070c72f09c7c8ed136393fecf158c36417d9ba1ff022f61424bbe2bb",
        "fake-first_name": "a08faea8be62e8a589952cd88e436e51a431760a99fc7ea09e9ccfba5426c28a",
        "fake-last_name": "0ff411dbc3fc0acf3d59dbcaf26b60697985628735952eae692f4edb7b3a105d",
        "fake-full_name": "ec1df6c79c7fae81f18cebe042cb40d80827cb1d531d17278677dbfad12c4935",
        "fake-email": "80b2903c940e858143987874c8d02243b4069a2cfbe0f8e4537389953f7a4028",
        "fake-phone": "c7ec5862c6efbe81e901ad3aeafd618b1f033c468fe087ea2f6ee078b1841450",
        "fake-street_address": "30a78ee34cd33b80fdee950ffcaff919a8aa64c2d59666776c3247d62dba7262",
        "fake-city": "bb37e5986ba9655d5ef7a5d3cbd33243f10a1c1eb677ddcc6e3935110195f941",
        "fake-zip": "2abbc9021691fab4c3e24046689fd243aafe10338619173e5d67a870712ae793",
        "fake-company": "9f501ca37e6e567c9b680c0d6590bacd77c3728ac0e8f8e9e54516290d0e56dd",
        "fake-iban": "99f0b985a1c7261baf0365af318e1e3d3c848891e82dffcd95cf093e500ff646",
        "fake-ipv4": "15d51a17008d9426e069f2a07105574dcd9271e644d4a929e4d4bec0198a392b",
        "fake-uuid": "29bbaef329b87042170b9de62f71bd541908fa697ca7b1a2f66ce1638b1c4007",
    ]

    @Test("every rule gives exactly the outputs it always gave", arguments: MaskingGolden.configurations().map(\.0))
    func pinned(_ label: String) throws {
        let (_, rule, kind) = try #require(MaskingGolden.configurations().first { $0.0 == label })
        let outputs = try MaskingGolden.inputs(for: kind, label: label).map { try rule.apply($0, kind: kind, key: key) }
        #expect(MaskingGolden.digest(outputs) == Self.expected[label], "\(label): outputs changed (now \(MaskingGolden.digest(outputs)))")
    }

    @Test("the export's path (bytes in and out, long numbers permuted in one batch at the end) gives the pinned outputs, and adds no control byte where it says it does not",
          arguments: MaskingGolden.configurations().map(\.0))
    func exportPathPinned(_ label: String) throws {
        let (_, rule, kind) = try #require(MaskingGolden.configurations().first { $0.0 == label })
        let prepared = rule.prepared(kind: kind, key: key)
        let inputs = MaskingGolden.inputs(for: kind, label: label)
        // Every value into one buffer, as a chunk of rows is: a NUL after each, NULLs noted.
        var out: [UInt8] = []
        var batch = PermutationBatch(deferring: true)
        var nulls: Set<Int> = []
        for (index, value) in inputs.enumerated() {
            let present = try Array(value.utf8).withUnsafeBytes { bytes in
                Result { () throws(AnonymizationError) in try prepared.mask(bytes, into: &out, batch: &batch) }
            }.get()
            if !present { nulls.insert(index) }
            out.append(0)
        }
        batch.run(on: &out)
        let fields = out.split(separator: 0, omittingEmptySubsequences: false).dropLast()
        #expect(fields.count == inputs.count)
        let outputs: [String?] = fields.enumerated().map { nulls.contains($0.offset) ? nil : String(decoding: $0.element, as: UTF8.self) }
        #expect(MaskingGolden.digest(outputs) == Self.expected[label], "\(label): the export's path differs from the pinned outputs")
        // What lets the COPY path skip re-escaping must hold.
        let controls: Set<UInt8> = [0x5C, 0x0A, 0x0D, 0x09]
        if prepared.addsNoControl {
            for (value, output) in zip(inputs, outputs) where !value.utf8.contains(where: controls.contains) {
                #expect(!(output ?? "").utf8.contains(where: controls.contains), "\(label) of \(value) added a control byte")
            }
        }
    }
}
