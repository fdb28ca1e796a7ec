import DBQSupport
import Foundation

/// A real HTTP receiver on loopback (Python's http.server in a child process): every POST's
/// body is appended as one line to a file; the first `failFirst` requests get HTTP 500.
public final class WebhookSink: @unchecked Sendable {
    public let port: Int
    public let file: String
    let child: ChildProcess

    static let script = #"""
import http.server, sys, threading
port, path, fail_first = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
lock = threading.Lock()
seen = [0]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
        with lock:
            seen[0] += 1
            n = seen[0]
            if n > fail_first:
                with open(path, 'ab') as f:
                    f.write(body.replace(b'\n', b' ') + b'\n')
        self.send_response(500 if n <= fail_first else 200)
        self.send_header('Content-Length', '0')
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(('127.0.0.1', port), Handler).serve_forever()
"""#

    public init(failFirst: Int = 0) throws {
        port = LoopbackPort.free() ?? 28_080
        file = TestServices.temporaryDirectory("dbq-webhook") + "/requests.jsonl"
        FileManager.default.createFile(atPath: file, contents: nil)
        child = try ChildProcess("/usr/bin/python3", ["-c", Self.script, String(port), file, String(failFirst)])
    }

    public var url: String { "http://127.0.0.1:\(port)/hook/s3cr3t-token" }

    /// Waits until it answers.
    public func ready() async throws {
        try await listening(port, within: .seconds(10))
    }

    /// The bodies received (after the failures), as JSON objects.
    public var messages: [[String: Any]] {
        ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    public func stop() { child.signal(SIGTERM) }
    deinit { child.signal(SIGKILL) }
}

/// A real SMTP server on loopback (Debian's python3-aiosmtpd): each message it accepts is
/// written to a maildir.
public final class SMTPSink: @unchecked Sendable {
    public let port: Int
    public let directory: String
    let child: ChildProcess

    public init() throws {
        port = LoopbackPort.free() ?? 28_025
        directory = TestServices.temporaryDirectory("dbq-smtp") + "/mail"
        child = try ChildProcess("/usr/bin/python3", ["-m", "aiosmtpd", "-n", "-l", "127.0.0.1:\(port)", "-c", "aiosmtpd.handlers.Mailbox", directory])
    }

    public var url: String { "smtp://127.0.0.1:\(port)" }

    /// The messages received, as text.
    public var messages: [String] {
        let fm = FileManager.default
        let new = directory + "/new"
        return ((try? fm.contentsOfDirectory(atPath: new)) ?? []).sorted().compactMap { try? String(contentsOfFile: new + "/" + $0, encoding: .utf8) }
    }

    public func ready() async throws {
        try await listening(port, within: .seconds(15))
    }

    deinit { child.signal(SIGKILL) }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
func listening(_ port: Int, within timeout: Duration) async throws {
    _ = try await eventually(timeout, every: .milliseconds(100)) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
    }
}
